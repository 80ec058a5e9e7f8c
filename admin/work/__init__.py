"""The work, staff side: jobs and their visits, estimates (`views`). Services: portal.services.work."""

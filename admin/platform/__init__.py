"""What the admin stands on: staff login (`auth`), staff accounts (`staff`), business and payment settings
(`settings`) and the email outbox (`outbox`). Services: portal.services.platform."""

"""Customers, staff side: the list and record (`customers`), the client card's actions (`client_card`), custom
field settings (`custom_fields`) and the inbox of portal messages (`messages`). Services: portal.services.crm."""

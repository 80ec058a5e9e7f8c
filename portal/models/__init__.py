"""All models, imported here so metadata (and Alembic) sees every table."""
from portal.models.activity import ActivityEvent
from portal.models.customers import (Address, ContactLog, ContactTask, CustomFieldDefinition, CustomFieldValue,
                                     Customer, CustomerEmail, CustomerNote, CustomerPhone, Tag, customer_tags)
from portal.models.estimates import Estimate, EstimateLineItem
from portal.models.invoices import Invoice, InvoiceLineItem, InvoiceReminder, invoice_jobs
from portal.models.jobs import Job, JobLineItem, Visit
from portal.models.mail import QueuedEmail
from portal.models.messages import MessageRequest
from portal.models.payments import (Adjustment, Card, ChargeAttempt, ChargeAttemptInvoice, Payment, PaymentAllocation,
                                    ProcessedWebhookEvent, Refund)
from portal.models.plans import CustomerPlan, PlanAddon, PlanPayment, PlanPaymentLine, PlanTemplate, TemplateAddon
from portal.models.settings import BusinessSettings, FormSubmission
from portal.models.staff import StaffUser

__all__ = [
    "ActivityEvent", "Address", "Adjustment", "BusinessSettings", "Card", "ChargeAttempt", "ChargeAttemptInvoice", "ContactLog",
    "ContactTask", "CustomFieldDefinition", "CustomFieldValue", "Customer", "CustomerEmail", "CustomerNote",
    "CustomerPhone", "CustomerPlan", "Estimate", "EstimateLineItem", "FormSubmission", "Invoice", "InvoiceLineItem",
    "InvoiceReminder", "Job", "JobLineItem", "MessageRequest", "Payment", "PaymentAllocation", "PlanAddon",
    "PlanPayment", "PlanPaymentLine", "PlanTemplate", "ProcessedWebhookEvent", "QueuedEmail", "Refund", "StaffUser", "Tag",
    "TemplateAddon", "Visit", "customer_tags", "invoice_jobs",
]

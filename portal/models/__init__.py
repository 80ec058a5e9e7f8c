"""All models, imported here so metadata (and Alembic) sees every table."""
from portal.models.activity import ActivityEvent
from portal.models.customers import (
                                     Address,
                                     ContactLog,
                                     ContactTask,
                                     Customer,
                                     CustomerEmail,
                                     CustomerNote,
                                     CustomerPhone,
                                     CustomerStatus,
                                     CustomFieldDefinition,
                                     CustomFieldValue,
                                     Tag,
                                     customer_tags,
)
from portal.models.estimates import Estimate, EstimateLineItem, EstimateStatus
from portal.models.invoices import Invoice, InvoiceLineItem, InvoiceReminder, InvoiceStatus, invoice_jobs
from portal.models.jobs import Job, JobLineItem, JobStatus, Visit, VisitStatus
from portal.models.ledger_sums import CustomerPaymentSum, LedgerDaySum
from portal.models.mail import EmailStatus, QueuedEmail
from portal.models.messages import MessageRequest, MessageStatus
from portal.models.payments import (
                                     Adjustment,
                                     Card,
                                     ChargeAttempt,
                                     ChargeAttemptInvoice,
                                     ChargeAttemptStatus,
                                     Dispute,
                                     Payment,
                                     PaymentAllocation,
                                     PaymentStatus,
                                     ProcessedWebhookEvent,
                                     Refund,
                                     RefundStatus,
)
from portal.models.plans import (
                                     AddonStatus,
                                     CustomerPlan,
                                     PlanAddon,
                                     PlanPayment,
                                     PlanPaymentLine,
                                     PlanPaymentStatus,
                                     PlanStatus,
                                     PlanTemplate,
                                     TemplateAddon,
)
from portal.models.security import LoginSession, RecoveryCode
from portal.models.settings import BusinessSettings, FormSubmission
from portal.models.staff import StaffUser
from portal.models.system import SchedulerRun

__all__ = [
    "ActivityEvent", "Address", "Adjustment", "BusinessSettings", "Card", "ChargeAttempt", "ChargeAttemptInvoice",
    "CustomerPaymentSum", "Dispute", "LedgerDaySum", "SchedulerRun",
    "ContactLog", "ContactTask", "CustomFieldDefinition", "CustomFieldValue", "Customer", "CustomerEmail",
    "CustomerNote", "CustomerPhone", "CustomerPlan", "Estimate", "EstimateLineItem", "FormSubmission", "Invoice",
    "InvoiceLineItem", "InvoiceReminder", "Job", "JobLineItem", "LoginSession", "MessageRequest", "Payment",
    "PaymentAllocation", "PlanAddon", "PlanPayment", "PlanPaymentLine", "PlanTemplate", "ProcessedWebhookEvent",
    "QueuedEmail", "RecoveryCode", "Refund",
    "StaffUser", "Tag", "TemplateAddon", "Visit", "customer_tags", "invoice_jobs",
    # statuses
    "AddonStatus", "ChargeAttemptStatus", "CustomerStatus", "EmailStatus", "EstimateStatus", "InvoiceStatus",
    "JobStatus", "MessageStatus", "PaymentStatus", "PlanPaymentStatus", "PlanStatus", "RefundStatus", "VisitStatus",
]

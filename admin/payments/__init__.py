"""Money, staff side: cards on file, charging, hand-recorded payments, the payment page with refunds
(`views`) and the transactions report (`reports`). Services: portal.services.payments."""

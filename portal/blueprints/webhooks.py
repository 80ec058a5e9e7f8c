"""POST /webhooks/stripe (PAY-8). Exempt from CSRF only: the signature is its proof."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from portal.extensions import csrf, limiter
from portal.services.payments import webhooks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook():
    try:
        outcome = webhooks.handle(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except webhooks.Rejected:
        return jsonify(error="invalid signature or payload"), 400
    except webhooks.TryLater:
        return jsonify(error="Stripe unreachable; deliver again later"), 503
    return jsonify(result=outcome), 200

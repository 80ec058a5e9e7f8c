"""POST /webhooks/stripe (PAY-8). Exempt from CSRF only: the signature is its proof."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from portal.extensions import csrf, limiter
from portal.services.payments import webhooks

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/stripe")
@csrf.exempt
@limiter.exempt
def stripe_webhook():
    limit = int(current_app.config["WEBHOOK_MAX_BYTES"])
    if (request.content_length or 0) > limit:
        return jsonify(error="payload too large"), 413
    payload = request.stream.read(limit + 1)  # also bounds a body sent without Content-Length
    if len(payload) > limit:
        return jsonify(error="payload too large"), 413
    try:
        outcome = webhooks.handle(payload, request.headers.get("Stripe-Signature"))
    except webhooks.Rejected:
        return jsonify(error="invalid signature or payload"), 400
    except webhooks.TryLater:
        return jsonify(error="Stripe unreachable; deliver again later"), 503
    return jsonify(result=outcome), 200

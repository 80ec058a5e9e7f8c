/* Card entry with Stripe.js Elements (W-1, P-3, G-4).
 * The card number and CVC go from this page to Stripe only; our server receives the SetupIntent id.
 *
 * <form data-card-form data-publishable-key=… data-client-secret=…>
 *   <div data-card-element></div> <p data-card-errors role="alert"></p>
 *   <input type="hidden" name="setup_intent">
 * A form with radio inputs name="card_id" uses the element only when value "new" is chosen.
 * <form data-confirm-payment data-client-secret=…> finishes a payment that needs the bank's confirmation.
 */
(function () {
  "use strict";

  function messageFor(error) {
    if (!error) return "The card could not be saved. Check the details and try again.";
    return error.message || String(error);
  }

  function setupCardForm(form) {
    var stripe = Stripe(form.dataset.publishableKey);
    var elements = stripe.elements({ locale: document.documentElement.lang || "auto" });
    var card = elements.create("card", {hidePostalCode: false});
    var mount = form.querySelector("[data-card-element]");
    var errors = form.querySelector("[data-card-errors]");
    var hidden = form.querySelector("input[name=setup_intent]");
    var submit = form.querySelector("[type=submit]");
    card.mount(mount);

    function usesNewCard() {
      var chosen = form.querySelector("input[name=card_id]:checked");
      return !chosen || chosen.value === "new";
    }

    function toggle() {
      var box = form.querySelector("[data-new-card]");
      if (box) box.hidden = !usesNewCard();
    }
    form.querySelectorAll("input[name=card_id]").forEach(function (r) { r.addEventListener("change", toggle); });
    toggle();

    form.addEventListener("submit", function (event) {
      if (!usesNewCard() || hidden.value) return;  // a saved card, or already confirmed
      event.preventDefault();
      errors.textContent = "";
      if (submit) submit.disabled = true;
      stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}})
        .then(function (result) {
          if (result.error || !result.setupIntent) {
            errors.textContent = messageFor(result.error);
            if (submit) submit.disabled = false;
            return;
          }
          hidden.value = result.setupIntent.id;
          form.submit();
        })
        .catch(function (err) {
          errors.textContent = messageFor(err);
          if (submit) submit.disabled = false;
        });
    });
  }

  function confirmPayment(form) {
    var stripe = Stripe(form.dataset.publishableKey);
    stripe.confirmCardPayment(form.dataset.clientSecret).then(function () { form.submit(); },
                                                              function () { form.submit(); });
  }

  document.querySelectorAll("form[data-card-form]").forEach(setupCardForm);
  document.querySelectorAll("form[data-confirm-payment]").forEach(confirmPayment);
})();

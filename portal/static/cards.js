/* Card entry with Stripe.js Elements (W-1, P-3, G-4).
 * The card number and CVC go from this page to Stripe only; our server receives the SetupIntent id.
 *
 * <form data-card-form data-publishable-key=… data-client-secret=…>
 *   <div data-card-element></div> <p data-card-errors data-msg-…=… role="alert"></p>
 *   <input type="hidden" name="setup_intent">
 * A form with radio inputs name="card_id" uses the element only when value "new" is chosen.
 * <form data-confirm-payment data-client-secret=…> finishes a payment that needs the bank's confirmation.
 *
 * Issue 19: the submit button is disabled with its data-busy-text from the press until the outcome (saved card
 * or new card alike); card errors are the page's own translated sentences (data-msg-* on the errors line),
 * never a raw JavaScript or English processor message.
 */
(function () {
  "use strict";

  var INCOMPLETE = ["incomplete_number", "incomplete_expiry", "incomplete_cvc", "incomplete_zip"];
  var INVALID = ["invalid_number", "invalid_expiry_month", "invalid_expiry_year", "invalid_expiry_year_past",
                 "invalid_cvc", "incorrect_number", "incorrect_cvc", "incorrect_zip", "expired_card"];

  var DEFAULTS = {  // staff pages (English); the portal's card entry brings its own language
    msgIncomplete: "Enter the card number, expiry date, security code and postal code.",
    msgInvalid: "The card number, expiry date or security code is not right. Check them and try again.",
    msgDeclined: "The bank declined this card. Try another card, or call the number on the back of the card.",
    msgGeneric: "The card could not be checked. Check the details and try again, or use another card."
  };

  function messageFor(errors, error) {
    var code = error && (error.decline_code || error.code);
    var key = "msgGeneric";
    if (code && INCOMPLETE.indexOf(code) >= 0) key = "msgIncomplete";
    else if (code && INVALID.indexOf(code) >= 0) key = "msgInvalid";
    else if (code === "card_declined" || (error && error.type === "card_error")) key = "msgDeclined";
    return errors.dataset[key] || DEFAULTS[key];
  }

  function setBusy(form, on) {
    if (window.portalBusy) { window.portalBusy(form, on); return; }
    var submit = form.querySelector("[type=submit]");
    if (submit) submit.disabled = on;
  }

  function setupCardForm(form) {
    var stripe = Stripe(form.dataset.publishableKey);
    var elements = stripe.elements({ locale: document.documentElement.lang || "auto" });
    var card = elements.create("card", {hidePostalCode: false});
    var mount = form.querySelector("[data-card-element]");
    var errors = form.querySelector("[data-card-errors]");
    var hidden = form.querySelector("input[name=setup_intent]");
    var touched = false;
    var complete = null;  // Stripe.js says; a stand-in element that does not say leaves it to confirmCardSetup
    card.mount(mount);
    card.on("change", function (event) {
      touched = true;
      if (event && typeof event.complete === "boolean") complete = event.complete;
      if (event && event.error) { errors.textContent = messageFor(errors, event.error); } else { errors.textContent = ""; }
    });

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

    function fail(error) {
      errors.textContent = messageFor(errors, error);
      setBusy(form, false);
    }

    form.addEventListener("submit", function (event) {
      if (form.getAttribute("aria-busy") === "true") { event.preventDefault(); return; }  // pressed twice
      if (!usesNewCard() || hidden.value) { setBusy(form, true); return; }  // a saved card: on its way
      event.preventDefault();
      errors.textContent = "";
      if (!touched || complete === false) { fail({code: "incomplete_number"}); return; }
      setBusy(form, true);
      var result;
      try {
        result = stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}});
      } catch (err) {
        fail(err);
        return;
      }
      Promise.resolve(result).then(function (answer) {
        if (!answer || answer.error || !answer.setupIntent) { fail(answer && answer.error); return; }
        hidden.value = answer.setupIntent.id;
        form.submit();
      }).catch(fail);
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

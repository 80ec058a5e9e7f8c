/* Issue 19: a pay/save button, once pressed, is disabled and says what is happening until the next page
 * (no double submit on a slow network). Buttons carry the words in data-busy-text; forms with a card element
 * are handled by cards.js (it may stop the submit to confirm the card first) and use window.portalBusy.
 */
(function () {
  "use strict";

  function button(form) {
    return form.querySelector("[type=submit][data-busy-text]") || form.querySelector("[type=submit]");
  }

  function busy(form, on) {
    var b = button(form);
    if (!b) return;
    if (on) {
      if (!b.dataset.idleText) b.dataset.idleText = b.textContent;
      if (b.dataset.busyText) b.textContent = b.dataset.busyText;
      b.disabled = true;
      form.setAttribute("aria-busy", "true");
    } else {
      b.disabled = false;
      if (b.dataset.idleText) b.textContent = b.dataset.idleText;
      form.removeAttribute("aria-busy");
    }
  }

  window.portalBusy = busy;

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.hasAttribute("data-card-form")) return;
    if (!form.querySelector("[data-busy-text]")) return;
    if (form.getAttribute("aria-busy") === "true") {
      event.preventDefault();  // already on its way
      return;
    }
    busy(form, true);
  });

  // A pay button names the amount typed in its form's amount box ("Pay $45.00").
  function parseAmount(text) {
    var t = String(text || "").replace(/[\s\u00a0]/g, "");
    if (/,\d{1,2}$/.test(t)) t = t.replace(/\./g, "").replace(",", ".");  // 1.234,50
    else t = t.replace(/,/g, "");  // 1,234.50
    var n = Number(t);
    return isFinite(n) && n > 0 ? n : null;
  }

  function relabel(b, shown) {
    b.textContent = b.dataset.label.replace("{amount}", shown);
    if (b.dataset.busyLabel) b.dataset.busyText = b.dataset.busyLabel.replace("{amount}", shown);
    delete b.dataset.idleText;
  }

  // ... or the amount of the option chosen (a plan's billing frequency: its first payment).
  document.querySelectorAll("[data-pay-button][data-amount-radio]").forEach(function (b) {
    if (!b.form || !b.dataset.label) return;
    b.form.querySelectorAll("input[name=" + b.dataset.amountRadio + "]").forEach(function (radio) {
      radio.addEventListener("change", function () { if (radio.checked && radio.dataset.amount) relabel(b, radio.dataset.amount); });
    });
  });

  document.querySelectorAll("[data-pay-button]").forEach(function (b) {
    var form = b.form;
    var box = form && form.querySelector("input[name=amount]");
    if (!box || !b.dataset.label) return;
    var format = new Intl.NumberFormat(document.documentElement.lang || "en",
                                       {style: "currency", currency: b.dataset.currency || "USD"});
    box.addEventListener("input", function () {
      var n = parseAmount(box.value);
      if (n === null) return;
      relabel(b, format.format(n));
    });
  });

  // Back from the next page (bfcache): the buttons work again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[aria-busy=true]").forEach(function (form) { busy(form, false); });
  });
})();

"""Issue 18 point 4: the card guard cannot be dodged by how a number is written, and still lets through the
numbers people do type (phones, invoice numbers, amounts, dates, zip codes)."""
import json

import pytest
from werkzeug.datastructures import MultiDict

from portal.card_guard import contains_card_number
from tests.factories import make_customer, make_staff
from tests.helpers import csrf_token_from

VISA, AMEX, MC = "4242424242424242", "378282246310005", "5555555555554444"
FULL_WIDTH = VISA.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
ARABIC_INDIC = VISA.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))

REFUSED = [
    VISA,
    "4242 4242 4242 4242",
    "4242-4242-4242-4242",
    "4242.4242.4242.4242",
    "4242/4242/4242/4242",
    "4242_4242_4242_4242",
    "4242\\4242\\4242\\4242",
    "4242|4242|4242|4242",
    "4242\n4242\n4242\n4242",
    "4242\r\n4242\r\n4242\r\n4242",
    "4\n2\n4\n2\n4\n2\n4\n2\n4\n2\n4\n2\n4\n2\n4\n2",
    "4242\t4242\t4242\t4242",
    "4242\u00a04242\u00a04242\u00a04242",  # no-break spaces
    "4242\u20134242\u20144242\u22124242",  # en dash, em dash, minus sign
    "4242 - 4242 - 4242 - 4242",
    "4\u200b2\u200b4\u200b2\u200b4\u200b2\u200b4\u200b2\u200b4\u200b2\u200b4\u200b2\u200b4\u200b2\u200b4\u200b2",  # ZWSP
    "42\u200c42 42\u200d42 4242\u2060 4242\ufeff",  # zero-width non-joiner, joiner, word joiner, BOM
    "4242\u00ad4242\u00ad4242\u00ad4242",  # soft hyphens
    FULL_WIDTH,
    "４２４２ ４２４２ ４２４２ ４２４２",
    ARABIC_INDIC,
    "unit 7 4242 4242 4242 4242",
    "apt 12, 4242 4242 4242 4242 thanks",
    "call 555 0100 4242424242424242 exp 12/30",
    "my card is4242424242424242please",
    AMEX, "3782 822463 10005",  # Amex groups 4-6-5
    MC, "5555 5555 5555 4444 123",  # a CVC after it
    "4000 0566 5566 5556",
    "4242 4242 4242 4242 4",  # 17 digits, the card inside
]

ALLOWED = [
    "+1 (555) 201-3344",
    "555-201-3344",
    "Call 555-201-3344 or 555-201-3345",
    "(555) 201-3344, (555) 201-3345",
    "+44 20 7946 0958",
    "INV-1001", "INV-1001, INV-1002, INV-1003",
    "J-0042 and E-0007",
    "$1,234.56", "1.234,56 €", "Paid 12,345.67 on 2026-03-02",
    "2026-03-02", "03/02/2026", "2 March 2026, 10:30", "2026-03-02T10:30:00Z",
    "90210", "90210-1234", "SW1A 1AA", "Zip 10001, apt 4B",
    "Check #10452 for 350.00",
    "4242 4242 4242 4241",  # fails Luhn
    "0000 0000 0000 0000",  # one digit repeated
    "1042",
    "seti_1Abc2345678901234",
    "pi_3MtwBwLkdIwHu7ix28a3tqPa",
    "Order 12345678, ref 87654321",
    "Gate code 4242, alarm 1234",
    "1234567890123456789012345",  # a 25-digit reference: longer than any card
]


@pytest.mark.parametrize("text", REFUSED)
def test_a_card_number_is_found_however_it_is_written(text):
    assert contains_card_number(text), repr(text)


@pytest.mark.parametrize("text", ALLOWED)
def test_numbers_people_type_still_pass(text):
    assert not contains_card_number(text), repr(text)


def test_the_guard_checks_every_value_field_names_and_json_bodies(app, client, login_staff):
    with app.app_context():
        staff = make_staff("admin")
        customer = make_customer("Ana", "Diaz")
    login_staff(staff)
    page = client.get(f"/admin/customers/{customer.id}").get_data(True)
    csrf = csrf_token_from(page)
    note = f"/admin/customers/{customer.id}/notes"
    cases = [
        [("csrf_token", csrf), ("body", "gate code 4242"), ("body", "4242.4242.4242.4242")],  # the second value
        [("csrf_token", csrf), ("body", "fine"), ("tag", "a"), ("tag", "4242_4242_4242_4242")],
        [("csrf_token", csrf), ("body", "fine"), ("note 4242 4242 4242 4242", "x")],  # a field name
    ]
    for data in cases:
        r = client.post(note, data=MultiDict(data))
        assert r.status_code == 400 and "Card numbers cannot be entered here" in r.get_data(True), data
    r = client.post(note, data=json.dumps({"body": "ok", "nested": [{"x": ["4242\u200b4242\u200b4242\u200b4242"]}]}),
                    headers={"X-CSRFToken": csrf}, content_type="application/json")
    assert r.status_code == 400 and "Card numbers cannot be entered here" in r.get_data(True)
    r = client.post(note, data=json.dumps({"n": 4242424242424242}), headers={"X-CSRFToken": csrf},
                    content_type="application/json")
    assert r.status_code == 400
    assert "4242" not in client.get(f"/admin/customers/{customer.id}").get_data(True)  # nothing was stored

"""Small helpers for tests that read pages."""
import re


def csrf_token_from(html: str) -> str:
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def wait_for_email(smtp, address: str | None = None, subject_part: str = "", timeout: float = 10.0):
    """Emails go out after the response that queued them: poll the capture server. `address=None` looks at every
    recipient; returns the matching messages (subject containing `subject_part`)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = smtp.to(address) if address else list(smtp.messages)
        found = [m for m in pool if subject_part in str(m["Subject"])]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no email {'to ' + address if address else ''} with {subject_part!r} in the subject "
                         f"within {timeout:.0f} s; got {[(str(m['To']), str(m['Subject'])) for m in smtp.messages]}")

"""App factory, health, error pages, config layers."""
from portal import create_app


def test_healthz_reports_ok_with_the_database(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "database": "ok", "scheduler": None}  # no scheduler run yet (issue 14)


def test_not_found_pages_wear_the_look_of_their_area(client):
    portal = client.get("/portal/no-such-page")
    admin = client.get("/admin/no-such-page")
    assert portal.status_code == 404 and admin.status_code == 404
    assert 'class="portal"' in portal.get_data(True) and "Page not found" in portal.get_data(True)
    assert 'class="admin"' in admin.get_data(True) and "Page not found" in admin.get_data(True)


def test_config_layers_env_overrides_instance_file_and_test_config_overrides_env(tmp_path, monkeypatch):
    (tmp_path / "config.py").write_text("BUSINESS_NAME = 'From instance'\nMAGIC_LINK_MAX_AGE_DAYS = 5\n")
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PORTAL_MAGIC_LINK_MAX_AGE_DAYS", "6")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["BUSINESS_NAME"] == "From instance"
    assert app.config["MAGIC_LINK_MAX_AGE_DAYS"] == 6
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "MAGIC_LINK_MAX_AGE_DAYS": 7})
    assert app.config["MAGIC_LINK_MAX_AGE_DAYS"] == 7
    # No secret in the repo: one is generated into the instance folder and reused.
    assert (tmp_path / "secret_key").read_text().strip() == app.config["SECRET_KEY"]


def test_session_cookie_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    dev = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "BASE_URL": "http://127.0.0.1:5000"})
    prod = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "BASE_URL": "https://portal.example.com"})
    for app in (dev, prod):
        assert app.config["SESSION_COOKIE_HTTPONLY"] is True
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert dev.config["SESSION_COOKIE_SECURE"] is False
    assert prod.config["SESSION_COOKIE_SECURE"] is True


def test_unexpected_errors_render_a_500_page_in_each_look(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})

    def boom():
        raise RuntimeError("kaboom")

    app.add_url_rule("/portal/boom", "portal_boom", boom)
    app.add_url_rule("/admin/boom", "admin_boom", boom)
    client = app.test_client()
    for path, look in (("/portal/boom", 'class="portal"'), ("/admin/boom", 'class="admin"')):
        r = client.get(path)
        assert r.status_code == 500
        body = r.get_data(True)
        assert look in body and "Something went wrong" in body and "kaboom" not in body

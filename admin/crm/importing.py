"""DATA-1, DATA-2: /admin/customers/import (upload → preview with the editable column mapping → confirm) and
/admin/customers/export.csv (streamed). The rules are in portal.services.crm.importing / exporting.

The import runs inside the confirming request, in one transaction: 10,000 rows take a few seconds (numbers in
bench/customer_import.py), so a job queue and a polled status page would add moving parts for no gain; the
confirm page shows a progress indicator while the request runs (portal/static/import.js)."""
from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField

from admin import bp
from admin.forms import ConfirmForm
from portal import clock
from portal.extensions import db
from portal.services.crm import exporting, importing
from portal.services.errors import ServiceError, ValidationError


class UploadForm(FlaskForm):
    file = FileField("CSV file")


@bp.route("/customers/import", methods=["GET", "POST"])
def customer_import():
    # Files up to 20 MB are read; past that `importing.parse` says so. (An app-wide MAX_CONTENT_LENGTH, if
    # production sets one, must stay above 21 MB for that message to be the one people see.)
    form, error = UploadForm(), None
    submitted = form.validate_on_submit()
    if submitted:
        upload = form.file.data
        if upload is None or not getattr(upload, "filename", ""):
            error = "Choose a CSV file to upload."
        else:
            try:
                imp = importing.upload(upload.filename, upload.read(importing.MAX_BYTES + 1), current_user)
                db.session.commit()
                return redirect(url_for("admin.customer_import_preview", import_id=imp.id))
            except ValidationError as exc:
                db.session.rollback()
                error = exc.message
    elif request.method == "POST":
        error = "The form expired; reload the page and try again."
    status = 400 if error else 200
    return render_template("admin/customers/import.html", form=form, error=error,
                           max_rows=importing.MAX_ROWS), status


def _posted_mapping(headers: list[str]) -> list[str]:
    return [request.form.get(f"col-{i}", "") for i in range(len(headers))]


@bp.route("/customers/import/<int:import_id>", methods=["GET", "POST"])
def customer_import_preview(import_id: int):
    """GET: the preview. POST action=preview: keep the edited mapping and preview again; action=confirm: import
    (refused when the mapping was edited since the preview the user saw)."""
    imp = importing.load(import_id)
    if imp.imported_at is not None:
        return render_template("admin/customers/import_done.html", imp=imp)
    form = ConfirmForm()
    headers = importing.headers_of(imp)
    mapping, error, status, mapping_ok = importing.mapping_of(imp), None, 200, True
    if request.method == "POST" and not form.validate_on_submit():
        error, status = "The form expired; reload the page and try again.", 400
    elif request.method == "POST":
        mapping = _posted_mapping(headers)
        update_existing = request.form.get("existing", "update") == "update"
        confirming = request.form.get("action") == "confirm"
        try:
            if mapping != importing.mapping_of(imp) or update_existing != imp.update_existing:
                importing.remap(imp, mapping, update_existing)
                db.session.commit()
                if confirming:
                    error, status = ("The column mapping or the choice for existing customers changed since this "
                                     "preview: check the preview below and import again."), 409
            elif confirming:
                result = importing.confirm(imp, current_user)
                db.session.commit()
                counts = result.counts
                flash(f"Imported {imp.filename}: {counts['created']} created, {counts['updated']} updated, "
                      f"{counts['skipped']} skipped, {counts['refused']} refused.", "success")
                return redirect(url_for("admin.customer_import_preview", import_id=imp.id))
        except ServiceError as exc:
            db.session.rollback()
            error, status, mapping_ok = exc.message, 400, not isinstance(exc, ValidationError)
            imp = importing.load(import_id)
            if imp.imported_at is not None:  # confirmed meanwhile (another tab, a double click)
                return render_template("admin/customers/import_done.html", imp=imp, error=error), 409
    plan = None
    if mapping_ok:
        try:
            plan = importing.plan(imp)
        except ValidationError as exc:  # e.g. a custom field chosen for a column was switched off since
            error, status = exc.message, 409
    return render_template("admin/customers/import_preview.html", imp=imp, form=form, headers=headers,
                           mapping=mapping, samples=importing.samples(imp), targets=importing.targets(), plan=plan,
                           error=error, delimiter=importing.DELIMITER_NAMES.get(imp.delimiter, imp.delimiter)), status


@bp.get("/customers/export.csv")
def customer_export():
    name = f"customers-{clock.today().isoformat()}.csv"
    return Response(stream_with_context(exporting.csv_chunks()), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

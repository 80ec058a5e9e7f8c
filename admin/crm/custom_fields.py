"""C-6: custom field definitions, Settings › Fields (their values are saved from the client card)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp
from admin.crm.forms import CustomFieldEditForm, CustomFieldForm
from portal.blueprints.actions import run_form
from portal.services.crm import custom_fields


@bp.route("/settings/fields", methods=["GET", "POST"])
def settings_fields():
    form = CustomFieldForm()
    if form.validate_on_submit():
        done = run_form(form, lambda: custom_fields.define(
            label=form.label.data, field_type=form.field_type.data, required=form.required.data,
            options=form.options.data, staff=current_user), "label")
        if done:
            flash(f"Field “{done.result.label}” added to every client card.", "success")
            return redirect(url_for("admin.settings_fields"))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/settings_fields.html", form=form, fields=custom_fields.definitions(False),
                           type_labels=custom_fields.TYPE_LABELS), status


@bp.route("/settings/fields/<int:field_id>", methods=["GET", "POST"])
def settings_field_edit(field_id: int):
    definition = custom_fields.get_definition(field_id)
    form = CustomFieldEditForm(obj=None if request.method == "POST" else definition)
    if request.method == "GET":
        form.active.data = definition.is_active
    elif form.validate_on_submit() and run_form(form, lambda: custom_fields.update_definition(
            definition, label=form.label.data, required=form.required.data, options=form.options.data,
            active=form.active.data), "label"):
        flash("Field saved; values on client cards are kept.", "success")
        return redirect(url_for("admin.settings_fields"))
    status = 400 if form.is_submitted() else 200
    return render_template("admin/settings_field_edit.html", form=form, field=definition,
                           type_labels=custom_fields.TYPE_LABELS), status

"""DATA-2: Settings › Export all data (admin only: the endpoint starts with admin.settings). A ZIP of CSV files
with a README, streamed as it is written (portal.services.overview.data_export)."""
from __future__ import annotations

from flask import Response, stream_with_context

from admin import bp
from portal import clock
from portal.services.overview import data_export


@bp.get("/settings/export.zip")
def settings_export():
    name = f"data-export-{clock.today().isoformat()}.zip"
    return Response(stream_with_context(data_export.zip_chunks()), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

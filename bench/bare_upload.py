"""The HTTP floor of an upload, for bench_floor: a bare FastAPI endpoint on the same uvicorn that
parses the multipart upload and writes its file (beside a temporary name, then renamed, as the
service does), and does nothing else: no database, no checks, no metadata.

    BARE_UPLOAD_ROOT=/tmp/files .venv/bin/python -m uvicorn bench.bare_upload:app --port 3001
"""

from __future__ import annotations

import os
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Form, UploadFile

from bench.bench_floor import write_file

ROOT = Path(os.environ.get("BARE_UPLOAD_ROOT", "bare-uploads"))
app = FastAPI()


@app.post("/images")
async def upload(image: UploadFile, file: str = Form()) -> dict[str, str]:
    content = await image.read()
    await to_thread.run_sync(write_file, ROOT, file, content)
    return {"file": file}

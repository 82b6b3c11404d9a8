"""liveman.toml.example: it loads as the defaults and documents every key."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from liveman.config import (
    Account,
    AuthConfig,
    AutoRecordConfig,
    CascadeConfig,
    ClusterConfig,
    CoturnConfig,
    DatabaseConfig,
    ExtraIceConfig,
    HttpConfig,
    Net4mqttConfig,
    NodeConfig,
    PlaybackConfig,
    RecordSyncConfig,
    Settings,
    load_settings,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "liveman.toml.example"


def test_example_loads_as_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    tables: dict[str, type[BaseModel]] = {
        "http": HttpConfig, "auth": AuthConfig, "auth.accounts": Account,
        "nodes": NodeConfig, "cluster": ClusterConfig, "database": DatabaseConfig,
        "cascade": CascadeConfig, "extra_ice": ExtraIceConfig, "extra_ice.coturn": CoturnConfig,
        "playback": PlaybackConfig, "auto_record": AutoRecordConfig,
        "record_sync": RecordSyncConfig, "net4mqtt": Net4mqttConfig,
    }
    for table, model in tables.items():
        assert re.search(rf"^#?\s*\[\[?{re.escape(table)}\]\]?$", text, re.M), table
        for key, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                continue  # a nested table, checked as its own entry
            if key in ("coturn", "cloudflare", "accounts", "ice_servers", "password"):
                continue  # nested tables and Live777's plaintext form, shown in prose
            assert re.search(rf"^#?\s*{key} = ", text, re.M), f"{table}.{key} undocumented"
    assert "[[liveion]]" in text and "[extra_ice.cloudflare]" in text
    assert "[recorder.storage]" in text

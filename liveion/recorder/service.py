"""Starting the recorder: storage, spool, index and the Recorder, with clear errors."""

from __future__ import annotations

import logging

from ..config import RecorderConfig
from ..sfu.manager import StreamManager
from ..storage import StorageError, describe_target, open_storage
from .index import RecordingIndex
from .spool import SpoolError, Uploader
from .task import Recorder

logger = logging.getLogger(__name__)


async def open_recorder(config: RecorderConfig, manager: StreamManager) -> Recorder | None:
    """The running recorder, or None (logged) when its storage or spool cannot be used at
    all. Storage that is merely unreachable or refuses the credentials is logged as an error
    and recording still goes on into the local spool, to be uploaded when storage works."""
    try:
        storage = open_storage(config.storage)
    except StorageError as exc:
        logger.error("recorder disabled: %s", exc)
        return None
    problem = await storage.check()
    if problem is not None:
        logger.error("recording storage %s is not usable now: %s; recordings are spooled "
                     "in %s until it is", describe_target(config.storage), problem,
                     config.spool_dir)
    uploader = Uploader(storage, config.spool_dir)
    try:
        left = await uploader.start()
    except SpoolError as exc:
        logger.error("recorder disabled: %s", exc)
        return None
    if left:
        logger.info("uploading %d recording files a previous run left in %s", left,
                    config.spool_dir)
    recorder = Recorder(config, manager, storage, uploader, RecordingIndex(config.index_path),
                        manager.events)
    recorder.start()
    return recorder

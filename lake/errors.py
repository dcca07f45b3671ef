"""Errors the lake raises. Each message is one line that names the path and says what to do."""


class LakeError(Exception):
    """Base class for every lake problem a user can act on."""


class NotALakeError(LakeError):
    """The path exists but does not hold a DMD2 Visualizer lake."""


class SchemaVersionError(LakeError):
    """The lake was written by a newer version of this tool."""


class LakeLockedError(LakeError):
    """Another process is writing to the lake."""


class ModelRegistryError(LakeError, ValueError):
    """A model record is invalid, or differs from the one registered under its name."""

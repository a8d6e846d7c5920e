"""The two errors of reading data with a contract; import them from ``components.data.contract``.

Their own module so that the contract's section checks (``contract_sections``) raise the same error
as the contract without importing the module that imports them.
"""

from __future__ import annotations


class ContractError(ValueError):
    """The contract is invalid; the message names the field."""


class DataReadError(ValueError):
    """A file cannot be read as the contract says; the message names the problem."""

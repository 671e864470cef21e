"""The typer commands: thin shims, options -> settings -> one library call -> exit code.

* :mod:`~provisioner.commands.options`: every shared option, declared once, in groups
  (:class:`~provisioner.commands.options.ApiOptions`,
  :class:`~provisioner.commands.options.EncryptionOptions`, ...), and
  :func:`~provisioner.commands.options.with_groups`, which adds a group's options to a
  command and sets up logging once;
* :mod:`~provisioner.commands.common`: errors, outcomes and tables -> output and exit codes;
* one module a family of commands: ``run``, ``importing``, ``register``, ``product``,
  ``validate``, ``keys``, ``emulator``. Each command builds the settings its library call
  takes from its options, checking in the order it always has (a run's API settings
  before its encryption, a product's secret file before the API settings), so an
  operator who got two things wrong hears of the same one first.

The logic the commands need is in the library (:mod:`provisioner.pipeline`,
:mod:`provisioner.inputs`, :mod:`provisioner.products`, :mod:`provisioner.output`).
"""

"""The one exception type whose message is shown to the user as a single line."""


class UserError(Exception):
  """A mistake in the user's input or environment; main prints it without a traceback."""

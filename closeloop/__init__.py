"""closeloop: every request reaching a back office gets an owner, a next step and an answer."""

__version__ = "0.1.0"

"""hw4lib: PromptIR for rain and snow removal, with everything the notebooks call."""

__version__ = "0.1.0"

"""Language-model back ends and the embedded default model. Heavy imports stay inside functions."""

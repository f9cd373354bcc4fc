"""One pane per research step: arena, data, training, evaluation, sessions; and the help screen."""

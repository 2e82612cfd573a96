"""The taskiq worker of the reference deployment: broker, tasks, runner."""

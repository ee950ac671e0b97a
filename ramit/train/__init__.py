"""Training: recipes as data (`recipe`), the schedule as a function of the iteration (`schedule`),
resume state (`checkpoint`) and the loop itself (`loop.train_main`, what `ramit train` calls).

    from ramit.train import train_main, load_recipe, Schedule
"""

from ramit.train.recipe import Recipe, load_recipe
from ramit.train.schedule import Point, Schedule


def train_main(**kwargs):
    """See `ramit.train.loop.train_main` (imported on use: it pulls in torch and the models)."""
    from ramit.train.loop import train_main as _train_main

    return _train_main(**kwargs)


__all__ = ["Point", "Recipe", "Schedule", "load_recipe", "train_main"]

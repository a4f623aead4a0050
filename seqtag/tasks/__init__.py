"""Built-in tasks; importing this package registers them."""

from seqtag.tasks.base import TASKS, Task, register_task
from seqtag.tasks.tagging import TaggingTask
from seqtag.tasks.target_sentiment import TargetSentimentTask  # noqa: F401  (registers target-sentiment)
from seqtag.tasks.tree_sentiment import TreeSentimentTask  # noqa: F401  (registers tree-sentiment)

__all__ = ["TASKS", "Task", "TaggingTask", "register_task"]

"""Built-in task types. Importing this package registers them in the default registry."""

from taskservice.tasks import demo as demo
from taskservice.tasks import files as files
from taskservice.tasks import sleep as sleep

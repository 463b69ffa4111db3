"""A job: train one trial to an epoch budget. What a method hands out and the runner runs."""
from dataclasses import dataclass, field

#: what a method's next_job() returns when it needs more results before it can decide
WAIT = "wait"


@dataclass(frozen=True)
class Job:
    trial: str                      # the id: a hash of the parameters
    params: dict = field(compare=False, hash=False)
    epochs: int = 0                 # train until this epoch (continuing what the trial has done)
    rung: int = 0
    bracket: int = 0

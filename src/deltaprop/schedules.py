"""Learning-rate schedules: the rate of each epoch, from the rate given to ``fit``.

``epoch`` counts from 0 within one ``fit`` call; ``epochs`` is that call's total and
``n_samples`` its number of training rows.

===========  =============================================================================
constant     eta_e = eta
step         eta_e = eta * gamma ** (e // step_size)                  (torch StepLR)
exponential  eta_e = eta * gamma ** e                                   (torch ExponentialLR)
invscaling   eta_e = eta / (e * n_samples + 1) ** power_t   (scikit-learn's 'invscaling':
             t counts the samples seen before the epoch)
cosine       eta_e = eta_min + (eta - eta_min) * (1 + cos(pi * e / epochs)) / 2
                                                               (torch CosineAnnealingLR)
===========  =============================================================================
"""

import math
from dataclasses import dataclass

from ._validation import check_finite_scalar, check_positive_int, resolve_named


@dataclass(frozen=True)
class Schedule:
    name = "abstract"

    def rate(self, eta, epoch, epochs, n_samples):
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    name = "constant"

    def rate(self, eta, epoch, epochs, n_samples):
        return eta


@dataclass(frozen=True)
class Step(Schedule):
    step_size: int = 10
    gamma: float = 0.1
    name = "step"

    def __post_init__(self):
        check_positive_int(self.step_size, "step_size")
        check_finite_scalar(self.gamma, "gamma", positive=True)

    def rate(self, eta, epoch, epochs, n_samples):
        return eta * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class Exponential(Schedule):
    gamma: float = 0.95
    name = "exponential"

    def __post_init__(self):
        check_finite_scalar(self.gamma, "gamma", positive=True)

    def rate(self, eta, epoch, epochs, n_samples):
        return eta * self.gamma ** epoch


@dataclass(frozen=True)
class InvScaling(Schedule):
    power_t: float = 0.5
    name = "invscaling"

    def __post_init__(self):
        check_finite_scalar(self.power_t, "power_t")

    def rate(self, eta, epoch, epochs, n_samples):
        return eta / (epoch * n_samples + 1) ** self.power_t


@dataclass(frozen=True)
class Cosine(Schedule):
    eta_min: float = 0.0
    name = "cosine"

    def __post_init__(self):
        check_finite_scalar(self.eta_min, "eta_min")

    def rate(self, eta, epoch, epochs, n_samples):
        return self.eta_min + (eta - self.eta_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


SCHEDULES = {cls.name: cls for cls in (Constant, Step, Exponential, InvScaling, Cosine)}


def get_schedule(schedule):
    """A Schedule from a name ('cosine') or a Schedule instance (Step(step_size=5))."""
    return resolve_named(schedule, Schedule, SCHEDULES, "schedule")

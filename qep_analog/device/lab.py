"""Lab metadata beside a pulser device spec, and the shot bill of a run or a bundle.

Pulser's device JSON has no field for what a device costs to run. A sidecar file does:
``devices/<stem>.lab.json`` next to ``devices/<stem>.json`` (pulser never reads it), e.g.::

    {"shot_rate_hz": 0.25, "price_per_shot": 3.3, "currency": "EUR", "max_runs_per_job": 1000,
     "source": "cloud provider's price list, 2025"}

``shot_rate_hz`` (shots per second, > 0), ``price_per_shot`` (≥ 0, in ``currency``, a 3-letter code),
``max_runs_per_job`` (integer ≥ 1; when absent, the device's pulser ``max_runs``), optional
``source`` and ``note`` (text ≤ 256 characters). Unknown keys, non-finite or out-of-range numbers
are refused by name: a sidecar is read from the same untrusted places as the device spec.

The shot bill of M_s shots on each of S sequences (one shot = one preparation and one Z-basis
readout): shots = Σ_s M_s; jobs = Σ_s ⌈M_s / max_runs_per_job⌉ (a job runs one sequence at most
``max_runs_per_job`` times); hours = shots / shot_rate_hz / 3600; cost = shots × price_per_shot.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from qep_analog.device.limits import check_number, show
from qep_analog.errors import QepValueError

LAB_SUFFIX = ".lab.json"
MAX_LAB_FILE_BYTES = 64_000
_KEYS = {"shot_rate_hz", "price_per_shot", "currency", "max_runs_per_job", "source", "note"}


@dataclass(frozen=True, kw_only=True)
class LabMetadata:
    """What running a device costs: shots per second, price per shot, runs per job (see the module docstring)."""

    shot_rate_hz: float
    price_per_shot: float
    currency: str
    max_runs_per_job: int | None = None
    source: str = ""
    note: str = ""
    file: str = ""

    def __post_init__(self) -> None:
        check_number(self.shot_rate_hz, "shot_rate_hz", low=1e-9, high=1e9)
        check_number(self.price_per_shot, "price_per_shot", low=0.0, high=1e9)
        if not (isinstance(self.currency, str) and len(self.currency) == 3 and self.currency.isalpha()
                and self.currency.isupper()):
            raise QepValueError(f"'currency' must be a 3-letter code such as 'EUR', not {show(self.currency)}")
        if self.max_runs_per_job is not None:
            check_number(self.max_runs_per_job, "max_runs_per_job", low=1, high=10**9, integer=True)
        for key in ("source", "note"):
            value = getattr(self, key)
            if not isinstance(value, str) or len(value) > 256:
                raise QepValueError(f"'{key}' must be text of at most 256 characters, not {show(value)}")


@dataclass(frozen=True, kw_only=True)
class ShotBill:
    """Total shots, jobs, hours at the device's shot rate and cost (None where the rate is unknown)."""

    shots: int
    sequences: int
    jobs: int
    hours: float | None
    cost: float | None
    currency: str | None
    device: str
    max_runs_per_job: int | None
    rate_source: str

    def as_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line: ``360,000 shots in 720 jobs = 400.0 h, 1,188,000 EUR (FresnelLikeDevice; 0.25 shots/s, …)``."""
        text = f"{self.shots:,} shots in {self.jobs:,} jobs"
        if self.hours is not None:
            text += f" = {self.hours:,.1f} h, {self.cost:,.0f} {self.currency}"
        else:
            text += " (no shot rate or price known for this device)"
        return text + f" ({self.device}; {self.rate_source})"


def sidecar_path(device_file: Path) -> Path:
    return device_file.with_name(device_file.stem + LAB_SUFFIX)


def read_lab_file(path: Path) -> LabMetadata:
    """Lab metadata from a sidecar file; every failure is a QepValueError naming the file."""
    try:
        size = path.stat().st_size
        if size > MAX_LAB_FILE_BYTES:
            raise QepValueError(f"lab file {path}: {size} bytes, more than {MAX_LAB_FILE_BYTES}")
        data = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse)
    except OSError as exc:
        raise QepValueError(f"lab file {path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise QepValueError(f"lab file {path}: not valid JSON ({_short(exc)})") from None
    if not isinstance(data, dict):
        raise QepValueError(f"lab file {path}: must hold a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise QepValueError(f"lab file {path}: unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    missing = sorted({"shot_rate_hz", "price_per_shot", "currency"} - set(data))
    if missing:
        raise QepValueError(f"lab file {path}: missing keys {missing}")
    try:
        return LabMetadata(**data, file=str(path))
    except QepValueError as exc:
        raise QepValueError(f"lab file {path}: {exc}") from None


def _refuse(text: str):
    raise ValueError(f"{text} is not a number")


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:120]


def lab_metadata(spec) -> LabMetadata | None:
    """The sidecar of a device given by name or JSON path (first match in the device directories), or None."""
    from qep_analog.device.devices import PULSER_DEVICES, device_dirs

    if spec is None or not isinstance(spec, str | Path):
        return None
    text = str(spec)
    if text in PULSER_DEVICES:
        candidates = [folder / f"{text}{LAB_SUFFIX}" for folder in device_dirs()]
    elif text.endswith(".json"):
        candidates = [sidecar_path(Path(text))]
    elif "/" in text or "\\" in text or text.startswith(".") or not text:
        return None
    else:
        candidates = []
        for folder in device_dirs():  # the sidecar of the device file load_device picks
            if (folder / f"{text}.json").is_file():
                candidates = [folder / f"{text}{LAB_SUFFIX}"]
                break
    for path in candidates:
        if path.is_file():
            return read_lab_file(path)
    return None


def shot_bill(shots_per_sequence, *, device, lab: LabMetadata | None = None,
              rate_source: str | None = None) -> ShotBill:
    """The bill of running each sequence ``shots_per_sequence[s]`` times on ``device`` (a pulser device).

    ``max_runs_per_job`` comes from the sidecar, else from pulser's ``device.max_runs`` (else one job per
    sequence). Hours and cost need the sidecar; without one they are None."""
    shots = [int(m) for m in shots_per_sequence]
    if any(m < 0 for m in shots):
        raise QepValueError(f"shots per sequence must be ≥ 0, not {min(shots)}")
    runs = lab.max_runs_per_job if lab is not None else None
    runs = runs or getattr(device, "max_runs", None)
    jobs = sum(math.ceil(m / runs) if runs else (1 if m else 0) for m in shots)
    total = sum(shots)
    if lab is None:
        return ShotBill(shots=total, sequences=len(shots), jobs=jobs, hours=None, cost=None, currency=None,
                        device=device.name, max_runs_per_job=runs, rate_source=rate_source or "no lab metadata")
    source = rate_source or (f"{lab.shot_rate_hz:g} shots/s, {lab.price_per_shot:g} {lab.currency}/shot"
                             + (f", {lab.source}" if lab.source else "") + (f"; {lab.note}" if lab.note else ""))
    return ShotBill(shots=total, sequences=len(shots), jobs=jobs, hours=total / lab.shot_rate_hz / 3600.0,
                    cost=total * lab.price_per_shot, currency=lab.currency, device=device.name,
                    max_runs_per_job=runs, rate_source=source)


def job_split(shots: int, max_runs: int | None) -> list[int]:
    """Runs of each job for one sequence of ``shots`` runs: ⌈shots/max_runs⌉ jobs, as even as possible."""
    if not max_runs or shots <= max_runs:
        return [int(shots)]
    k = math.ceil(shots / max_runs)
    base, extra = divmod(int(shots), k)
    return [base + (1 if i < extra else 0) for i in range(k)]


REFERENCE_LAB = "fresnel_like"  # the rate a run without a device is billed at (hypothetically)


def reference_bill(shots: int, sequences: int | None = None) -> ShotBill:
    """The bill of ``shots`` at the FRESNEL-like rate of the packaged ``fresnel_like.lab.json``, for a run on no
    device (a hypothetical: the task's model is not a Rydberg array). Without per-sequence counts, jobs are
    ⌈shots / max_runs_per_job⌉, a lower bound (a job runs a single sequence)."""
    path = Path(__file__).resolve().parents[1] / "devices_data" / f"{REFERENCE_LAB}{LAB_SUFFIX}"
    lab = read_lab_file(path)
    runs = lab.max_runs_per_job or 1
    jobs = math.ceil(shots / runs)
    source = (f"hypothetical: no device, billed at {REFERENCE_LAB}'s {lab.shot_rate_hz:g} shots/s and "
              f"{lab.price_per_shot:g} {lab.currency}/shot; jobs ≥ ⌈shots/{runs}⌉")
    return ShotBill(shots=int(shots), sequences=int(sequences or 0), jobs=jobs,
                    hours=shots / lab.shot_rate_hz / 3600.0, cost=shots * lab.price_per_shot, currency=lab.currency,
                    device="none", max_runs_per_job=runs, rate_source=source)

"""Two small models behind "stop guessing capacity" and "pay only for what you use".

Lesson: ``09-cloud-computing`` (and its exercise). Everything is a pure function of its
arguments; the plots return a matplotlib ``Figure`` and the two explorers are ipywidgets
that draw once when made and redraw when a slider moves (so they also work headless).

**Capacity.** Demand is a list of numbers, one per :data:`STEP_MINUTES` over a week, in
*servers' worth of load* (how many servers the load needs at that moment). Compare it with
a fixed capacity (servers bought for the data centre) or with an autoscaler that follows
demand after a lag. Demand above capacity is *unmet* (requests refused or slow); capacity
above demand is *idle* (paid for, unused). Both are counted in server-hours.

>>> demand = week_demand()
>>> len(demand) == STEPS_PER_WEEK
True
>>> unmet_server_hours([1, 5, 2], [3, 3, 3]) * STEPS_PER_HOUR    # only the 5 exceeds 3
2.0
>>> autoscaled_capacity([1, 5, 2], lag_minutes=10, headroom=0)   # one step behind
[1, 1, 5]

**Cost.** Three ways to pay for a workload, as cumulative cost per month: buy servers for
the peak up front; rent on demand what an autoscaler runs; or reserve the always-on
baseline and rent the rest on demand. Every price is a :class:`Price` that says where it
comes from and when; the examples in :data:`EXAMPLE_PRICES` are to be checked, not trusted.

>>> cumulative_cost(100, 10, 3)
[100, 110, 120, 130]
>>> break_even_month([100, 110, 120, 130], [0, 50, 100, 150])
3
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace

from ..errors import LessonError
from ..ui.palette import BAD, DARK, GOLD, GOOD, INK, LIGHT, PURPLE

STEP_MINUTES = 10
STEPS_PER_HOUR = 60 // STEP_MINUTES
STEPS_PER_DAY = 24 * STEPS_PER_HOUR
STEPS_PER_WEEK = 7 * STEPS_PER_DAY
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Hours in a month, as AWS's pricing pages and calculator count them.
HOURS_PER_MONTH = 730


class ModelError(LessonError, ValueError):
    """A model was given something it cannot use (a negative lag, an empty demand...)."""


def _number(name: str, value, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ModelError(f"{name} must be a number >= {low:g}, not {value!r}", f"pass e.g. {name}={max(low, 1):g}")
    return float(value)


def _series(name: str, values) -> list[float]:
    vals = list(values) if isinstance(values, (list, tuple)) else None
    if not vals:
        raise ModelError(f"{name} must be a non-empty list of numbers, not {values!r:.60}",
                         f"pass a list such as cloudmodels.week_demand() for {name}")
    return [_number(f"{name}[{i}]", v) for i, v in enumerate(vals)]


# ------------------------------------------------------------------------------ capacity
def week_demand(*, base: float = 2, daily_peak: float = 10, spike_peak: float = 30, spike_day: int = 3,
                spike_hour: float = 19, spike_hours: float = 6, weekend: float = 0.6) -> list[float]:
    """A week of demand, Monday 00:00 first, one value per :data:`STEP_MINUTES`.

    ``base`` servers at night; a daytime hump up to ``daily_peak`` (``weekend`` times as high
    above the base on Saturday and Sunday); one spike (a sale, a TV advert) on ``spike_day``
    (0 = Monday) at ``spike_hour`` that climbs to ``spike_peak`` in half an hour and fades
    over about ``spike_hours``. Deterministic: the same arguments give the same week.
    """
    base, daily_peak, spike_peak = (_number(n, v) for n, v in
                                    (("base", base), ("daily_peak", daily_peak), ("spike_peak", spike_peak)))
    if isinstance(spike_day, bool) or not isinstance(spike_day, int) or not 0 <= spike_day <= 6:
        raise ModelError(f"spike_day must be 0 (Monday) to 6 (Sunday), not {spike_day!r}", "pass e.g. spike_day=3")
    tau = _number("spike_hours", spike_hours, low=0.1) / 3
    rise = 0.5

    def usual(day: int, hour: float) -> float:
        hump = math.sin(math.pi * (hour - 6) / 18) ** 2 if 6 <= hour < 24 else 0.0
        return base + (daily_peak - base) * hump * (weekend if day >= 5 else 1.0)

    extra = max(0.0, spike_peak - usual(spike_day, spike_hour + rise))
    out = []
    for t in range(STEPS_PER_WEEK):
        day, hour = divmod(t, STEPS_PER_DAY)
        hour /= STEPS_PER_HOUR
        value = usual(day, hour)
        since = (t - spike_day * STEPS_PER_DAY) / STEPS_PER_HOUR - spike_hour
        if 0 <= since < rise:
            value += extra * since / rise
        elif since >= rise and since - rise < 8 * tau:  # (after 8 tau the spike is gone: < 0.04 %)
            value += extra * math.exp(-(since - rise) / tau)
        out.append(round(max(value, 0.0), 4))
    return out


def fixed_capacity(demand: list[float], servers: float) -> list[float]:
    """The same ``servers`` at every step: what a data centre has, whatever the demand."""
    return [_number("servers", servers)] * len(_series("demand", demand))


def autoscaled_capacity(demand: list[float], *, lag_minutes: float = 20, headroom: float = 0.1,
                        min_servers: int = 1) -> list[int]:
    """What a simple autoscaler runs: at each step, enough whole servers for the demand it saw
    ``lag_minutes`` earlier (metrics, alarm and boot take time) plus ``headroom`` (0.1 = 10 %),
    never fewer than ``min_servers``. Before the week starts it assumes the first value."""
    d = _series("demand", demand)
    lag = math.ceil(_number("lag_minutes", lag_minutes) / STEP_MINUTES)
    grow = 1 + _number("headroom", headroom)
    return [max(int(min_servers), math.ceil(d[max(t - lag, 0)] * grow - 1e-9)) for t in range(len(d))]


def _pair(demand, capacity) -> tuple[list[float], list[float]]:
    d, c = _series("demand", demand), _series("capacity", capacity)
    if len(d) != len(c):
        raise ModelError(f"demand has {len(d)} values but capacity has {len(c)}",
                         "make the capacity from the same demand, e.g. fixed_capacity(demand, 12)")
    return d, c


def unmet_server_hours(demand: list[float], capacity: list[float]) -> float:
    """Server-hours of demand above capacity: load that was turned away or served slowly."""
    d, c = _pair(demand, capacity)
    return sum(max(0.0, x - y) for x, y in zip(d, c)) / STEPS_PER_HOUR


def idle_server_hours(demand: list[float], capacity: list[float]) -> float:
    """Server-hours of capacity above demand: servers paid for but doing nothing."""
    d, c = _pair(demand, capacity)
    return sum(max(0.0, y - x) for x, y in zip(d, c)) / STEPS_PER_HOUR


def served_fraction(demand: list[float], capacity: list[float]) -> float:
    """Share of all demand that capacity could serve (1.0 = everything)."""
    d, c = _pair(demand, capacity)
    total = sum(d)
    return 1.0 if total == 0 else sum(min(x, y) for x, y in zip(d, c)) / total


def summary(demand: list[float], capacity: list[float], label: str = "") -> str:
    """One line: unmet and idle server-hours, and the share of demand served."""
    return (f"{label + ': ' if label else ''}unmet {unmet_server_hours(demand, capacity):6.1f} server-hours, "
            f"idle {idle_server_hours(demand, capacity):6.1f} server-hours, "
            f"served {100 * served_fraction(demand, capacity):.2f}% of demand")


# ------------------------------------------------------------------------------ cost
@dataclass(frozen=True)
class Price:
    """A price and where it comes from: ``source`` names the page (or says it is an assumption),
    ``as_of`` says when it was read. Prices change: check them before relying on them."""

    amount: float
    unit: str
    source: str
    as_of: str
    assumption: bool = False

    def __str__(self) -> str:
        kind = "assumption for illustration, not a quote" if self.assumption else f"list price, as listed {self.as_of}"
        amount = f"{self.amount:,.10f}".rstrip("0").rstrip(".")
        return f"${amount} {self.unit} ({self.source}; {kind})"

    def to(self, amount: float) -> Price:
        """The same price line with your own amount (say where it comes from in your notes)."""
        return replace(self, amount=_number("amount", amount), source=f"your value (example was: {self.source})")


#: Example prices (US dollars). List prices are those AWS's pages showed on the date given;
#: the on-premises figures are round assumptions, not quotes. Check before you rely on any.
EXAMPLE_PRICES = {
    "on_demand": Price(0.096, "per instance-hour",
                       "Amazon EC2 On-Demand Pricing page: m5.large, Linux, US East (N. Virginia)", "2024-2025"),
    "reserved": Price(0.060, "per instance-hour, paid for every hour of the 1-year term",
                      "Amazon EC2 Reserved Instances pricing page: m5.large, Linux, US East (N. Virginia), "
                      "Standard, 1-year, No Upfront", "2024"),
    "purchase": Price(1000, "per server-share, once",
                      "a rack server of about $16,000 split into 16 m5.large-sized shares (2 vCPU, 8 GiB); "
                      "no racks, network or spares counted", "-", assumption=True),
    "running": Price(25, "per server-share per month",
                     "power, cooling, floor space and a slice of an administrator's time", "-", assumption=True),
}


@dataclass(frozen=True)
class Workload:
    """What the cost model needs to know about a demand curve, in servers."""

    base: float      # always needed (the quietest moment)
    average: float   # what an autoscaler runs on average
    peak: int        # what you must own to serve the busiest moment

    def __post_init__(self):
        for name in ("base", "average", "peak"):
            _number(f"Workload.{name}", getattr(self, name))

    def __str__(self) -> str:
        return f"base {self.base:.1f}, average {self.average:.1f}, peak {self.peak} servers"


def workload_from(demand: list[float], capacity: list[float] | None = None) -> Workload:
    """Base, average and peak servers of a week (average of ``capacity`` if given, else of demand)."""
    d = _series("demand", demand)
    run = d if capacity is None else _pair(d, capacity)[1]
    return Workload(base=min(d), average=sum(run) / len(run), peak=math.ceil(max(d) - 1e-9))


def monthly_bill(workload: Workload, prices: dict[str, Price] | None = None) -> dict[str, tuple[float, float]]:
    """For each way to pay, ``(up-front, per month)`` in dollars.

    ``buy``: own ``peak`` servers. ``on-demand``: rent ``average`` servers all month.
    ``reserved + on-demand``: reserve ``base`` servers for every hour, rent the rest on demand.
    """
    p = {**EXAMPLE_PRICES, **(prices or {})}
    od, ri = p["on_demand"].amount * HOURS_PER_MONTH, p["reserved"].amount * HOURS_PER_MONTH
    base = min(workload.base, workload.average)
    return {"buy": (workload.peak * p["purchase"].amount, workload.peak * p["running"].amount),
            "on-demand": (0.0, workload.average * od),
            "reserved + on-demand": (0.0, base * ri + (workload.average - base) * od)}


def cumulative_cost(upfront: float, monthly: float, months: int) -> list[float]:
    """Total spent after 0, 1, ..., ``months`` months."""
    return [upfront + monthly * m for m in range(int(months) + 1)]


def break_even_month(costs: list[float], other: list[float]) -> int | None:
    """The first month (1 or later) at whose end ``costs`` has cost no more than ``other`` in total,
    or None if that never happens within the curves."""
    a, b = _pair(costs, other)
    return next((m for m in range(1, len(a)) if a[m] <= b[m]), None)


def cost_curves(workload: Workload, months: int = 60, prices: dict[str, Price] | None = None) -> dict[str, list[float]]:
    """Cumulative cost of each way to pay, months 0..``months``."""
    return {k: cumulative_cost(u, m, months) for k, (u, m) in monthly_bill(workload, prices).items()}


# ------------------------------------------------------------------------------ plots
_COLOURS = {"demand": INK, "unmet": BAD, "idle": LIGHT, "buy": PURPLE, "on-demand": GOOD, "reserved + on-demand": GOLD}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: the same in a notebook, a test or a widget

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_capacity(demand: list[float], fixed: float = 12, autoscaled: list[int] | None = None, *,
                  title: str = "One week of demand against two ways to provide capacity"):
    """Fixed capacity (top) and autoscaled capacity (bottom) over the week, a close-up of the
    busiest 12 hours, and the week's unmet and idle server-hours. Returns the Figure."""
    d = _series("demand", demand)
    auto = autoscaled_capacity(d) if autoscaled is None else autoscaled
    rows = [(f"fixed: {fixed:g} servers", fixed_capacity(d, fixed)), ("autoscaled", auto)]
    fig = _figure(12, 5.4)
    grid = fig.add_gridspec(2, 3, width_ratios=(3.2, 1.3, 1.2))
    hours = [t / STEPS_PER_HOUR for t in range(len(d))]
    top = max(max(d), fixed, max(auto)) * 1.1
    busiest = hours[d.index(max(d))]
    zoom = (max(0.0, busiest - 4), min(168.0, busiest + 8))
    for i, (label, cap) in enumerate(rows):
        for j, xlim in enumerate(((0, 168), zoom)):
            ax = fig.add_subplot(grid[i, j])
            ax.fill_between(hours, d, cap, where=[x > y for x, y in zip(d, cap)], color=_COLOURS["unmet"],
                            alpha=0.85, step="post", label="unmet demand")
            ax.fill_between(hours, d, cap, where=[y > x for x, y in zip(d, cap)], color=_COLOURS["idle"],
                            alpha=0.6, step="post", label="idle capacity")
            ax.plot(hours, d, color=_COLOURS["demand"], lw=1, label="demand")
            ax.step(hours, cap, where="post", color=DARK, lw=1.2, label="capacity")
            ax.set(ylim=(0, top), xlim=xlim)
            ax.set_title(f"{label}" + ("" if j == 0 else ": close-up"), fontsize=10)
            if j == 0:
                ax.set_xticks([24 * k + 12 for k in range(7)], DAYS)
                ax.set_ylabel("servers")
            else:
                ticks = range(math.ceil(zoom[0] / 2) * 2, int(zoom[1]) + 1, 4)
                ax.set_xticks(list(ticks), [f"{DAYS[int(h // 24) % 7]} {int(h % 24):02d}h" for h in ticks],
                              fontsize=8)
            if i == 0 and j == 0:
                ax.legend(loc="upper left", fontsize=8, ncols=4)
    for i, (what, func, colour) in enumerate((("unmet demand", unmet_server_hours, "unmet"),
                                              ("idle capacity", idle_server_hours, "idle"))):
        ax = fig.add_subplot(grid[i, 2])
        values = [func(d, c) for _, c in rows]
        ax.barh(["fixed", "autoscaled"], values, color=_COLOURS[colour])
        for y, v in enumerate(values):
            ax.annotate(f"{v:,.1f}", (v, y), xytext=(3, -3), textcoords="offset points", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(values + [0.1]) * 1.4)
        ax.set_title(f"{what}\n(server-hours in the week)", fontsize=9)
    fig.suptitle(title)
    return fig


def plot_costs(curves: dict[str, list[float]], *, title: str = "Cumulative cost of three ways to pay"):
    """Cumulative cost per option, with the months where buying breaks even marked. Returns the Figure."""
    fig = _figure(9, 4.4)
    ax = fig.add_subplot()
    for name, c in curves.items():
        ax.plot(range(len(c)), c, color=_COLOURS.get(name), lw=2, label=name)
    notes = []
    for other in (k for k in curves if k != "buy"):
        m = break_even_month(curves["buy"], curves[other]) if "buy" in curves else None
        if m is not None:
            ax.plot([m], [curves["buy"][m]], "o", color=_COLOURS.get(other), ms=8, mec="black")
            right = m < 0.6 * (len(curves["buy"]) - 1)
            ax.annotate(f"month {m}", (m, curves["buy"][m]), xytext=(8 if right else -8, -16), fontsize=9,
                        textcoords="offset points", ha="left" if right else "right")
        notes.append(f"vs {other}: " + (f"month {m}" if m else f"never within {len(curves['buy']) - 1} months"))
    ax.set(xlabel="months", ylabel="total spent (US$)", xlim=(0, max(len(c) for c in curves.values()) - 1))
    ax.yaxis.set_major_formatter(lambda v, _: f"${v:,.0f}")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title(f"{title}\nbreak-even of buying {'; '.join(notes)}", fontsize=10)
    return fig


def png(fig) -> bytes:
    """The figure as PNG bytes (for an image widget, a file, or ``IPython.display.Image``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def show(fig) -> None:
    """Display a figure in a notebook as a PNG (works without any matplotlib backend set up)."""
    from IPython.display import Image, display

    display(Image(data=png(fig)))


# ------------------------------------------------------------------------------ explorers
def _explorer(sliders: dict, draw, *below):
    """Sliders beside a readout, the picture under them; ``draw(values)`` returns (figure, readout html).
    Draws once now (so it works headless) and again whenever a slider moves."""
    import ipywidgets as w

    image = w.Image(format="png", layout=w.Layout(width="100%"))
    readout = w.HTML(layout=w.Layout(margin="0 0 0 24px", flex="1 1 auto"))

    def redraw(_=None):
        fig, readout.value = draw({k: v.value for k, v in sliders.items()})
        image.value = png(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    # the sliders keep their width (with their own value shown at the right); the readout takes the rest
    controls = w.VBox(list(sliders.values()), layout=w.Layout(flex="0 0 auto"))
    box = w.VBox([w.HBox([controls, readout]), image, *below])
    box.sliders, box.readout, box.image = sliders, readout, image
    return box


def _slider(description: str, value, low, high, step, fmt=None):
    import ipywidgets as w

    kind = w.IntSlider if all(isinstance(x, int) for x in (value, low, high, step)) else w.FloatSlider
    return kind(value=value, min=low, max=high, step=step, description=description, continuous_update=False,
                style={"description_width": "200px"}, layout=w.Layout(width="520px"),
                **({"readout_format": fmt} if fmt else {}))


def capacity_explorer(*, spike_peak: float = 30, fixed: int = 12, lag_minutes: int = 20):
    """Sliders for the spike's peak, the fixed capacity and the scaling lag; redraws the week and
    the unmet/idle totals. ``explorer.sliders`` and ``explorer.readout`` are there to script it."""
    def draw(v):
        d = week_demand(spike_peak=v["spike_peak"])
        auto = autoscaled_capacity(d, lag_minutes=v["lag_minutes"])
        text = "<br>".join(summary(d, c, label) for label, c in
                           (("fixed", fixed_capacity(d, v["fixed"])), ("autoscaled", auto)))
        return plot_capacity(d, v["fixed"], auto), text

    return _explorer({"spike_peak": _slider("spike peak (servers)", spike_peak, 5, 60, 1),
                      "fixed": _slider("fixed capacity (servers)", fixed, 1, 60, 1),
                      "lag_minutes": _slider("scaling lag (minutes)", lag_minutes, 0, 120, 10)}, draw)


def cost_explorer(workload: Workload, *, months: int = 60, prices: dict[str, Price] | None = None):
    """Sliders for the workload (peak, average, base servers) and every price; redraws the
    cumulative costs with the break-even months. Each price's source is listed under it."""
    import html

    import ipywidgets as w

    p = {**EXAMPLE_PRICES, **(prices or {})}

    def draw(v):
        avg = min(v["average"], v["peak"])
        wl = Workload(base=min(v["base"], avg), average=avg, peak=v["peak"])
        mine = {k: p[k] if v[k] == p[k].amount else p[k].to(v[k]) for k in ("on_demand", "reserved", "purchase",
                                                                          "running")}
        return plot_costs(cost_curves(wl, months, mine)), "<br>".join(
            f"<b>{k}</b>: ${u:,.0f} up front + ${m:,.0f} a month" for k, (u, m) in monthly_bill(wl, mine).items())

    sources = w.HTML("<small>" + "<br>".join(f"<b>{k}</b>: {html.escape(str(v))}" for k, v in p.items()) + "</small>")
    return _explorer({"peak": _slider("servers at peak (own)", int(workload.peak), 1, 60, 1),
                      "average": _slider("average servers (autoscaled)", round(workload.average, 1), 0.5, 60.0, 0.5),
                      "base": _slider("always-on servers (reserve)", round(workload.base, 1), 0.0, 60.0, 0.5),
                      "on_demand": _slider("on-demand $/hour", p["on_demand"].amount, 0.01, 0.5, 0.002, ".3f"),
                      "reserved": _slider("reserved $/hour", p["reserved"].amount, 0.01, 0.5, 0.002, ".3f"),
                      "purchase": _slider("purchase $/server", int(p["purchase"].amount), 100, 5000, 50),
                      "running": _slider("running $/server/month", int(p["running"].amount), 0, 200, 5)},
                     draw, sources)

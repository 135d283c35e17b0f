"""The capacity and cost models of lesson 09: what the lesson claims must follow from them."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from coursekit.lessons import cloudmodels as cm

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def week():
    return cm.week_demand()


# ------------------------------------------------------------------------------ demand
def test_a_week_of_demand_has_one_value_per_step_and_is_repeatable(week):
    assert len(week) == cm.STEPS_PER_WEEK == 7 * 24 * 60 // cm.STEP_MINUTES
    assert cm.week_demand() == week
    assert all(isinstance(v, float) and v >= 0 for v in week)


def test_the_demand_has_quiet_nights_calmer_weekends_and_one_spike(week):
    def at(day, hour):
        return week[day * cm.STEPS_PER_DAY + hour * cm.STEPS_PER_HOUR]

    assert at(0, 3) == pytest.approx(2)                      # base at night
    assert at(1, 15) == pytest.approx(10)                    # a weekday's daytime peak
    assert at(5, 15) < at(1, 15)                             # Saturday is calmer
    assert max(week) == pytest.approx(30)                    # the spike's peak
    top = week.index(max(week)) / cm.STEPS_PER_HOUR
    assert 3 * 24 + 19 <= top <= 3 * 24 + 20                 # Thursday, soon after 19:00
    assert at(4, 15) == pytest.approx(10, abs=0.01)          # gone by Friday afternoon


def test_the_spike_follows_its_parameters():
    d = cm.week_demand(spike_peak=55, spike_day=0, spike_hour=9)
    assert max(d) == pytest.approx(55)
    assert d.index(max(d)) // cm.STEPS_PER_DAY == 0
    assert max(cm.week_demand(spike_peak=5)) == pytest.approx(10)   # below the daily peak: no spike at all


# ------------------------------------------------------------------------------ capacity
def test_unmet_and_idle_are_counted_in_server_hours():
    demand, capacity = [1, 5, 2, 4], [3, 3, 3, 3]
    assert cm.unmet_server_hours(demand, capacity) == pytest.approx((2 + 1) / cm.STEPS_PER_HOUR)
    assert cm.idle_server_hours(demand, capacity) == pytest.approx((2 + 1) / cm.STEPS_PER_HOUR)
    assert cm.served_fraction(demand, capacity) == pytest.approx((1 + 3 + 2 + 3) / 12)
    assert cm.served_fraction([0, 0], [0, 0]) == 1.0


def test_served_plus_unmet_is_all_demand(week):
    for capacity in (cm.fixed_capacity(week, 12), cm.autoscaled_capacity(week, lag_minutes=60)):
        unmet_share = cm.unmet_server_hours(week, capacity) * cm.STEPS_PER_HOUR / sum(week)
        assert cm.served_fraction(week, capacity) + unmet_share == pytest.approx(1)


def test_autoscaling_follows_the_demand_seen_lag_minutes_earlier():
    assert cm.autoscaled_capacity([1, 5, 2], lag_minutes=0, headroom=0) == [1, 5, 2]
    assert cm.autoscaled_capacity([1, 5, 2], lag_minutes=10, headroom=0) == [1, 1, 5]
    assert cm.autoscaled_capacity([1, 5, 2], lag_minutes=11, headroom=0) == [1, 1, 1]   # 11 min = 2 steps
    assert cm.autoscaled_capacity([1, 2, 3], lag_minutes=0, headroom=0.5) == [2, 3, 5]   # whole servers, rounded up
    assert cm.autoscaled_capacity([0, 0], lag_minutes=0, min_servers=2) == [2, 2]


def test_without_lag_nothing_is_unmet_and_more_lag_loses_more(week):
    lost = [cm.unmet_server_hours(week, cm.autoscaled_capacity(week, lag_minutes=lag)) for lag in range(0, 130, 10)]
    assert lost[0] == 0
    assert all(a < b for a, b in itertools.pairwise(lost)), lost


def test_stop_guessing_capacity_in_numbers(week):
    """What the lesson says about the default week: a fixed guess loses more and idles far more."""
    fixed, auto = cm.fixed_capacity(week, 12), cm.autoscaled_capacity(week, lag_minutes=20)
    assert cm.unmet_server_hours(week, fixed) > 2 * cm.unmet_server_hours(week, auto) > 0
    assert cm.idle_server_hours(week, fixed) > 5 * cm.idle_server_hours(week, auto)
    enough = cm.fixed_capacity(week, 30)
    assert cm.unmet_server_hours(week, enough) == 0
    assert cm.idle_server_hours(week, enough) > 4 * sum(week) / cm.STEPS_PER_HOUR
    assert "unmet" in cm.summary(week, fixed, "fixed") and "served 97.69%" in cm.summary(week, fixed)


@pytest.mark.parametrize("call, words", [
    (lambda: cm.autoscaled_capacity([1, 2], lag_minutes=-5), "lag_minutes"),
    (lambda: cm.unmet_server_hours([1, 2, 3], [1, 2]), "3 values but capacity has 2"),
    (lambda: cm.fixed_capacity([], 3), "non-empty list"),
    (lambda: cm.served_fraction([1, "2"], [1, 1]), "demand[1]"),
    (lambda: cm.idle_server_hours([1, float("nan")], [1, 1]), "demand[1]"),
    (lambda: cm.week_demand(spike_day=7), "spike_day"),
    (lambda: cm.week_demand(spike_day="Thursday"), "spike_day"),
    (lambda: cm.fixed_capacity([1], True), "servers"),
    (lambda: cm.Workload(base=-1, average=2, peak=3), "Workload.base"),
])
def test_bad_input_names_the_problem_and_the_fix(call, words):
    with pytest.raises(cm.ModelError) as info:
        call()
    assert words in info.value.problem and info.value.fix
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------------------ cost
def test_every_example_price_says_where_it_comes_from():
    for name, price in cm.EXAMPLE_PRICES.items():
        assert price.amount > 0 and price.unit and price.source and price.as_of, name
        text = str(price)
        assert price.source in text
        assert ("not a quote" in text) if price.assumption else (f"as listed {price.as_of}" in text)
    assert str(cm.Price(0.0000166667, "per GB-second", "a page", "2024")).startswith("$0.0000166667 per GB-second")
    mine = cm.EXAMPLE_PRICES["on_demand"].to(0.1)
    assert mine.amount == 0.1 and "your value" in mine.source


def test_the_monthly_bill_comes_from_the_prices_given():
    steady = cm.Workload(base=10, average=10, peak=10)
    bill = cm.monthly_bill(steady)
    assert bill["buy"] == (10 * 1000, 10 * 25)
    assert bill["on-demand"] == (0, pytest.approx(10 * 0.096 * cm.HOURS_PER_MONTH))
    assert bill["reserved + on-demand"] == (0, pytest.approx(10 * 0.060 * cm.HOURS_PER_MONTH))
    dearer = cm.monthly_bill(steady, {"on_demand": cm.EXAMPLE_PRICES["on_demand"].to(0.192)})
    assert dearer["on-demand"][1] == pytest.approx(2 * bill["on-demand"][1])
    mixed = cm.monthly_bill(cm.Workload(base=2, average=6, peak=30))
    assert mixed["reserved + on-demand"][1] == pytest.approx((2 * 0.060 + 4 * 0.096) * cm.HOURS_PER_MONTH)


def test_break_even_is_the_first_month_no_dearer():
    assert cm.cumulative_cost(100, 10, 3) == [100, 110, 120, 130]
    assert cm.break_even_month([100, 110, 120, 130], [0, 50, 100, 150]) == 3
    assert cm.break_even_month([100, 105, 110], [0, 55, 110]) == 2          # equal counts
    assert cm.break_even_month([0, 5, 10], [0, 50, 100]) == 1
    assert cm.break_even_month([100, 200, 300], [0, 50, 100]) is None


def test_break_even_agrees_with_the_closed_form_on_random_workloads():
    rng = random.Random(9)
    for _ in range(300):
        upfront, own, cloud = rng.randrange(0, 20001, 100), rng.randrange(0, 500), rng.randrange(0, 900)
        curves = (cm.cumulative_cost(upfront, own, 60), cm.cumulative_cost(0, cloud, 60))
        if cloud > own:
            month = max(1, math.ceil(upfront / (cloud - own)))
            expected = month if month <= 60 else None
        else:
            expected = 1 if upfront == 0 and cloud == own else None
        assert cm.break_even_month(*curves) == expected, (upfront, own, cloud)


def test_the_lessons_two_workloads(week):
    """Steady load: buying pays off in month 23 (on-demand) and 54 (reserved); the spiky week: never."""
    steady = cm.cost_curves(cm.Workload(base=10, average=10, peak=10), months=60)
    assert cm.break_even_month(steady["buy"], steady["on-demand"]) == 23
    assert cm.break_even_month(steady["buy"], steady["reserved + on-demand"]) == 54
    spiky_load = cm.workload_from(week, cm.autoscaled_capacity(week))
    assert (spiky_load.base, spiky_load.peak) == (2, 30) and 5 < spiky_load.average < 7
    spiky = cm.cost_curves(spiky_load)
    assert cm.break_even_month(spiky["buy"], spiky["on-demand"]) is None
    assert len(spiky["buy"]) == 61


# ------------------------------------------------------------------------------ plots and explorers
def test_the_plots_draw_and_name_the_break_even(week, tmp_path):
    fig = cm.plot_capacity(week, 12, cm.autoscaled_capacity(week))
    assert len(fig.axes) == 6
    data = cm.png(fig)
    assert data.startswith(PNG) and len(data) > 20_000
    (tmp_path / "capacity.png").write_bytes(data)
    costs = cm.plot_costs(cm.cost_curves(cm.Workload(10, 10, 10)))
    assert "on-demand: month 23" in costs.axes[0].get_title()
    never = cm.plot_costs(cm.cost_curves(cm.Workload(2, 6, 30)))
    assert "never within 60 months" in never.axes[0].get_title()


def test_the_capacity_explorer_draws_at_once_and_redraws_on_a_slider():
    box = cm.capacity_explorer()
    first_image, first_text = bytes(box.image.value), box.readout.value
    assert first_image.startswith(PNG) and "fixed: unmet" in first_text and "autoscaled: unmet" in first_text
    box.sliders["lag_minutes"].value = 0
    assert "autoscaled: unmet    0.0" in box.readout.value
    box.sliders["fixed"].value = 30
    assert "fixed: unmet    0.0" in box.readout.value
    assert bytes(box.image.value) != first_image


def test_the_cost_explorer_follows_its_price_sliders():
    box = cm.cost_explorer(cm.Workload(base=10, average=10, peak=10))
    assert bytes(box.image.value).startswith(PNG)
    assert "<b>on-demand</b>: $0 up front + $701 a month" in box.readout.value
    box.sliders["on_demand"].value = 0.192
    assert "<b>on-demand</b>: $0 up front + $1,402 a month" in box.readout.value
    box.sliders["average"].value = 50.0                          # more than the peak: clamped to it
    assert "<b>on-demand</b>: $0 up front + $1,402 a month" in box.readout.value
    assert "not a quote" in box.children[-1].value              # the sources are shown with the sliders

"""Feature dashboards (shared.dashboard): which features are shown, logit effects through the
right weights, and the page itself."""

import pytest
import torch

from shared.config import ConfigError, build
from shared.dashboard import FeatureCard, choose_features, logit_effects, render
from shared.dashboard_config import DashboardSettings

pytestmark = pytest.mark.unit


def test_features_are_live_and_spread_over_frequency_rank():
    freq = torch.tensor([0.0, 0.5, 0.01, 0.2, 0.0, 0.9, 0.05])
    assert choose_features(freq, 3).tolist() == [5, 3, 2]  # densest, middle, rarest live
    assert sorted(choose_features(freq, 10).tolist()) == [1, 2, 3, 5, 6]
    with pytest.raises(ValueError, match="no feature fires"):
        choose_features(torch.zeros(4), 2)


class _Model:
    class cfg:  # noqa: N801 - the attribute TransformerLens models have
        d_model = 3

    W_out = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    W_U = torch.eye(3)


def test_logit_effects_go_through_w_out_for_mlp_neurons():
    d = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    via_mlp = logit_effects(d, _Model, "blocks.1.mlp.hook_post")
    resid = _Model.W_out[1, 0].double()
    expected = resid - resid.mean()
    assert torch.allclose(via_mlp[0], expected - expected.mean())
    resid_dir = torch.tensor([[0.0, 2.0, 0.0]])
    assert torch.allclose(logit_effects(resid_dir, _Model, "blocks.0.hook_resid_pre")[0],
                          torch.tensor([-2 / 3, 4 / 3, -2 / 3], dtype=torch.float64))
    with pytest.raises(ValueError, match="neither d_mlp"):
        logit_effects(torch.ones(1, 5), _Model, "blocks.0.hook_resid_pre")


def test_page_has_one_section_per_feature_and_escapes_tokens():
    card = FeatureCard(feature=7, frequency=0.01, max_act=2.0,
                       contexts=[[("<b>", 0.0), ("x", 2.0)]], centre=1,
                       hist_edges=[0.0, 1.0, 2.0], hist_counts=[3, 1],
                       promoted=[("a&b", 0.5)], suppressed=[("z", -0.5)])
    page = render([card, card.__class__(**{**card.__dict__, "feature": 9})], "T", "note")
    assert page.count("<section id='f") == 2 and "href='#f9'" in page
    ctx = page.split("<div class='ctx'>")[1].split("</div>")[0]
    assert "&lt;b&gt;" in ctx and "<b>" not in ctx
    assert "&#x27;a&amp;b&#x27;" in page
    # The max-activating token is outlined and fully shaded.
    assert "rgba(255,127,14,1.00);outline" in ctx


def test_settings_are_checked():
    good = dict(n_features=4, n_contexts=2, window_before=3, window_after=1, n_logit_tokens=3,
                n_bins=10, max_rows=0, batch_rows=8)
    assert build(DashboardSettings, good).n_bins == 10
    with pytest.raises(ConfigError, match="n_bins >= 2"):
        build(DashboardSettings, {**good, "n_bins": 1})

from __future__ import annotations

import pytest

from apps.fleetsim.profiles import A100_80GB, L4, PROFILES, get_profile


def test_profiles__defaults__physically_plausible_for_an_8b_model() -> None:
    for profile in PROFILES.values():
        # Memory-bound decode: a lone stream on any of these GPUs runs 10-200 tok/s.
        assert 10 < profile.single_stream_decode_tokens_per_s < 200
        # Compute-bound prefill is one to three orders of magnitude faster.
        assert profile.prefill_tokens_per_s > 50 * profile.single_stream_decode_tokens_per_s
        assert profile.kv_cache_tokens >= profile.max_model_len
        assert 0 < profile.framebuffer_used_mib < profile.framebuffer_mib
    assert PROFILES["H100-80GB"].prefill_tokens_per_s > A100_80GB.prefill_tokens_per_s
    assert A100_80GB.single_stream_decode_tokens_per_s > L4.single_stream_decode_tokens_per_s


def test_get_profile__any_case__returns_profile_and_unknown_raises() -> None:
    assert get_profile("a100-80gb") is A100_80GB
    with pytest.raises(KeyError, match="unknown GPU profile"):
        get_profile("TPU-v5")


def test_profile__batched_decode__throughput_grows_with_batch_but_sublinearly() -> None:
    one = A100_80GB.decode_tokens_per_s(1, 1000)
    many = A100_80GB.decode_tokens_per_s(64, 1000)

    assert 10 * one < many < 64 * one

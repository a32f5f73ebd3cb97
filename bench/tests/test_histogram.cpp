// The latency histogram against the truth: bucket boundaries, percentiles of
// generated data against a sorted array, and merging.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "harness/histogram.hpp"

namespace {

using shmds_bench::latency_histogram;

TEST(Histogram, BucketsTileTheWholeRangeWithoutGaps) {
    for (std::size_t b = 0; b < latency_histogram::bucket_count; ++b) {
        ASSERT_EQ(latency_histogram::bucket_of(latency_histogram::bucket_low(b)), b);
        ASSERT_EQ(latency_histogram::bucket_of(latency_histogram::bucket_high(b)), b);
        if (b + 1 < latency_histogram::bucket_count) {
            ASSERT_EQ(latency_histogram::bucket_high(b) + 1, latency_histogram::bucket_low(b + 1)) << b;
        }
    }
    EXPECT_EQ(latency_histogram::bucket_low(0), 0u);
    EXPECT_EQ(latency_histogram::bucket_high(latency_histogram::bucket_count - 1), UINT64_MAX);
}

TEST(Histogram, BucketsAreNarrowerThanOneHundredTwentyEighthOfTheirValues) {
    for (std::size_t b = latency_histogram::sub_count; b < latency_histogram::bucket_count; ++b) {
        const auto low = static_cast<double>(latency_histogram::bucket_low(b));
        const double width = static_cast<double>(latency_histogram::bucket_high(b)) - low + 1;
        ASSERT_LE(width / low, 1.0 / 128 + 1e-12) << b;
    }
}

/// Checks every reported percentile against the sorted data: same bucket as
/// the exact value, never below it, and equal to it where buckets are exact.
void expect_percentiles_match(std::vector<std::uint64_t> values) {
    auto h = std::make_unique<latency_histogram>();
    for (auto v : values) h->record(v);
    std::sort(values.begin(), values.end());
    EXPECT_EQ(h->count(), values.size());
    EXPECT_EQ(h->min(), values.front());
    EXPECT_EQ(h->max(), values.back());
    for (double p : {1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0}) {
        const std::uint64_t exact = values[latency_histogram::rank_of(p, values.size()) - 1];
        const std::uint64_t reported = h->percentile(p);
        EXPECT_EQ(latency_histogram::bucket_of(reported), latency_histogram::bucket_of(exact)) << "p" << p;
        EXPECT_GE(reported, exact) << "p" << p;
        if (exact < latency_histogram::sub_count) {
            EXPECT_EQ(reported, exact) << "p" << p;
        }
    }
    EXPECT_EQ(h->percentile(100), values.back());
}

TEST(Histogram, PercentilesOfGeneratedDataMatchASortedArray) {
    std::mt19937_64 rng(42);
    std::vector<std::uint64_t> small, uniform, lognormal, bimodal;
    std::uniform_int_distribution<std::uint64_t> tiny(0, 255), wide(0, 10'000'000);
    std::lognormal_distribution<double> tail(7.0, 1.5);  // ~1 us with a long tail
    for (int i = 0; i < 200'000; ++i) {
        small.push_back(tiny(rng));
        uniform.push_back(wide(rng));
        lognormal.push_back(static_cast<std::uint64_t>(tail(rng)));
        bimodal.push_back(i % 100 == 0 ? 80'000 + tiny(rng) : 300 + tiny(rng));
    }
    expect_percentiles_match(small);
    expect_percentiles_match(uniform);
    expect_percentiles_match(lognormal);
    expect_percentiles_match(bimodal);
    expect_percentiles_match({UINT64_MAX, 0, 1, UINT64_MAX / 3});
}

TEST(Histogram, MergingEqualsRecordingEverythingInOne) {
    std::mt19937_64 rng(7);
    std::lognormal_distribution<double> tail(8.0, 2.0);
    auto all = std::make_unique<latency_histogram>();
    std::vector<std::unique_ptr<latency_histogram>> parts;
    parts.reserve(4);
    for (int p = 0; p < 4; ++p) parts.push_back(std::make_unique<latency_histogram>());
    for (int i = 0; i < 100'000; ++i) {
        const auto v = static_cast<std::uint64_t>(tail(rng));
        all->record(v);
        parts[static_cast<std::size_t>(i % 4)]->record(v);
    }
    auto merged = std::make_unique<latency_histogram>();
    for (auto& part : parts) merged->merge(*part);
    EXPECT_EQ(merged->count(), all->count());
    EXPECT_EQ(merged->min(), all->min());
    EXPECT_EQ(merged->max(), all->max());
    for (std::size_t b = 0; b < latency_histogram::bucket_count; ++b)
        ASSERT_EQ(merged->count_in(b), all->count_in(b)) << b;
    for (double p : {50.0, 99.0, 99.99}) EXPECT_EQ(merged->percentile(p), all->percentile(p));
}

TEST(Histogram, EmptyHistogramReportsZeros) {
    auto h = std::make_unique<latency_histogram>();
    EXPECT_EQ(h->percentile(50), 0u);
    EXPECT_EQ(h->min(), 0u);
    EXPECT_EQ(h->max(), 0u);
    EXPECT_EQ(h->mean(), 0.0);
    EXPECT_EQ(h->mid_mean(25, 75), 0.0);
}

// Exact buckets (values below 256): the mid-mean is the mean of the ranks
// between the two percentiles, with the values at the edges counted for the
// fraction of them inside, as a sorted array would give it.
TEST(Histogram, MidMeanIsTheMeanOfTheMiddleRanks) {
    auto h = std::make_unique<latency_histogram>();
    for (std::uint64_t v = 1; v <= 8; ++v) h->record(v);  // 1..8: ranks 3..6 are the middle half
    EXPECT_DOUBLE_EQ(h->mid_mean(25, 75), (3.0 + 4 + 5 + 6) / 4);
    EXPECT_DOUBLE_EQ(h->mid_mean(0, 100), 4.5);
    EXPECT_DOUBLE_EQ(h->mid_mean(0, 50), (1.0 + 2 + 3 + 4) / 4);
    // A third of the way into the ranks, 8/3 values: 1, 2 and two thirds of 3.
    EXPECT_DOUBLE_EQ(h->mid_mean(0, 100.0 / 3), (1.0 + 2 + 3 * (2.0 / 3)) / (8.0 / 3));
    EXPECT_EQ(h->mid_mean(50, 50), 0.0);
}

// Outliers beyond the quartiles do not move it; values between them do.
TEST(Histogram, MidMeanIgnoresOutliersButFollowsTheMiddle) {
    auto h = std::make_unique<latency_histogram>();
    h->record(100, 60);
    h->record(110, 40);
    const double before = h->mid_mean(25, 75);
    EXPECT_DOUBLE_EQ(before, (35 * 100.0 + 15 * 110.0) / 50);
    h->record(1'000'000, 1);  // one preemption
    h->record(1, 1);
    EXPECT_NEAR(h->mid_mean(25, 75), before, 0.5);
    // The median stays on 100 while more of the middle half moves to 110: the
    // mid-mean sees it.
    auto g = std::make_unique<latency_histogram>();
    g->record(100, 51);
    g->record(110, 49);
    EXPECT_EQ(g->percentile(50), h->percentile(50));
    EXPECT_GT(g->mid_mean(25, 75), before + 1);
}

}  // namespace

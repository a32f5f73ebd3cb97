// bench/harness/histogram.hpp: a latency histogram with log-linear buckets
// (the HdrHistogram layout), in fixed memory, so that every process of a
// benchmark can record into its own copy in shared memory and the parent can
// merge them.
//
// Values are unsigned integers (nanoseconds). Values below 2^sub_bits land in
// buckets of width 1 (exact); above, each power-of-two range [2^k, 2^(k+1))
// is split into 2^(sub_bits-1) equal buckets, so a bucket is never wider than
// 1/2^(sub_bits-1) of its values (0.8% with the default 8 bits). Percentiles
// are the highest value of the bucket that holds the requested rank, which is
// the same bucket the exact sorted-array percentile falls in (tested).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace shmds_bench {

template <unsigned SubBits = 8>
class log_linear_histogram {
    static_assert(SubBits >= 2 && SubBits <= 16, "between 2 and 16 sub-bucket bits");

public:
    static constexpr unsigned sub_bits = SubBits;
    static constexpr std::uint64_t sub_count = std::uint64_t{1} << SubBits;  // exact below this
    static constexpr std::uint64_t half = sub_count / 2;
    /// Buckets: [0, sub_count) exact, then `half` buckets per power of two up to 2^64.
    static constexpr std::size_t bucket_count = sub_count + (64 - SubBits) * half;

    /// Bucket index of `value`.
    static constexpr std::size_t bucket_of(std::uint64_t value) noexcept {
        if (value < sub_count) return static_cast<std::size_t>(value);
        const unsigned top =
            63u - static_cast<unsigned>(std::countl_zero(value));  // value in [2^top, 2^(top+1))
        const unsigned shift = top - (SubBits - 1);
        const std::uint64_t within = (value >> shift) - half;  // [0, half)
        return static_cast<std::size_t>(sub_count + (top - SubBits) * half + within);
    }

    /// Smallest and largest value a bucket holds.
    static constexpr std::uint64_t bucket_low(std::size_t bucket) noexcept {
        if (bucket < sub_count) return bucket;
        const std::size_t above = bucket - sub_count;
        const unsigned top = static_cast<unsigned>(above / half) + SubBits;
        const unsigned shift = top - (SubBits - 1);
        return (half + above % half) << shift;
    }
    static constexpr std::uint64_t bucket_high(std::size_t bucket) noexcept {
        if (bucket < sub_count) return bucket;
        const std::size_t above = bucket - sub_count;
        const unsigned top = static_cast<unsigned>(above / half) + SubBits;
        const unsigned shift = top - (SubBits - 1);
        return bucket_low(bucket) + ((std::uint64_t{1} << shift) - 1);
    }

    void record(std::uint64_t value) noexcept { record(value, 1); }
    void record(std::uint64_t value, std::uint64_t times) noexcept {
        counts_[bucket_of(value)] += times;
        total_ += times;
        min_ = std::min(min_, value);
        max_ = std::max(max_, value);
    }

    /// Adds everything `other` recorded (the result equals recording both
    /// streams into one histogram).
    void merge(const log_linear_histogram& other) noexcept {
        for (std::size_t i = 0; i < bucket_count; ++i) counts_[i] += other.counts_[i];
        total_ += other.total_;
        min_ = std::min(min_, other.min_);
        max_ = std::max(max_, other.max_);
    }

    void clear() noexcept { *this = log_linear_histogram{}; }

    [[nodiscard]] std::uint64_t count() const noexcept { return total_; }
    [[nodiscard]] std::uint64_t min() const noexcept { return total_ ? min_ : 0; }
    [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
    [[nodiscard]] std::uint64_t count_in(std::size_t bucket) const noexcept { return counts_[bucket]; }

    /// The value at percentile `p` (0 < p <= 100): the highest value of the
    /// bucket holding the element of rank ceil(p/100 * count) (1-based),
    /// clamped to the largest value recorded. 0 when empty.
    [[nodiscard]] std::uint64_t percentile(double p) const noexcept {
        if (total_ == 0) return 0;
        const auto rank = rank_of(p, total_);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            seen += counts_[i];
            if (seen >= rank) return std::min(bucket_high(i), max_);
        }
        return max_;
    }

    /// Mean of bucket midpoints, weighted by count.
    [[nodiscard]] double mean() const noexcept {
        if (total_ == 0) return 0;
        long double sum = 0;
        for (std::size_t i = 0; i < bucket_count; ++i)
            if (counts_[i] != 0)
                sum += static_cast<long double>(counts_[i]) *
                       (static_cast<long double>(bucket_low(i)) + static_cast<long double>(bucket_high(i))) /
                       2;
        return static_cast<double>(sum / static_cast<long double>(total_));
    }

    /// The mean of the values ranked between percentiles `low` and `high`
    /// (0 <= low < high <= 100; values at the edges counted for the fraction
    /// of them inside), each at its bucket's midpoint. 0 when empty.
    /// mid_mean(25, 75), the interquartile mean, is as robust to outliers as
    /// the median, but moves continuously with the values: where the clock
    /// ticks coarsely (here every 10 ns, while round trips take about 100),
    /// the median jumps from one tick to the next; the mid-mean averages
    /// over the ticks, whose phase is random against the events timed.
    [[nodiscard]] double mid_mean(double low, double high) const noexcept {
        if (total_ == 0 || !(low < high)) return 0;
        const double from = low / 100.0 * static_cast<double>(total_);
        const double to = high / 100.0 * static_cast<double>(total_);
        double seen = 0, weight = 0;
        long double sum = 0;
        for (std::size_t i = 0; i < bucket_count && seen < to; ++i) {
            if (counts_[i] == 0) continue;
            const double next = seen + static_cast<double>(counts_[i]);
            const double inside = std::min(next, to) - std::max(seen, from);
            if (inside > 0) {
                const long double midpoint =
                    (static_cast<long double>(bucket_low(i)) + static_cast<long double>(bucket_high(i))) / 2;
                sum += static_cast<long double>(inside) * midpoint;
                weight += inside;
            }
            seen = next;
        }
        return weight > 0 ? static_cast<double>(sum / static_cast<long double>(weight)) : 0;
    }

    /// 1-based rank of percentile `p` among `n` values.
    static std::uint64_t rank_of(double p, std::uint64_t n) noexcept {
        const double exact = std::ceil(p / 100.0 * static_cast<double>(n));
        return std::clamp<std::uint64_t>(static_cast<std::uint64_t>(exact), 1, n);
    }

private:
    std::array<std::uint64_t, bucket_count> counts_{};
    std::uint64_t total_ = 0;
    std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t max_ = 0;
};

/// The histogram the harness uses: 0.8% resolution, 14 KiB.
using latency_histogram = log_linear_histogram<8>;
static_assert(std::is_trivially_copyable_v<latency_histogram>, "histograms live in shared memory");

}  // namespace shmds_bench

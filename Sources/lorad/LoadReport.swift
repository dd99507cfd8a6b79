import Foundation
import Server

/// The figures of a load test: throughput, latency percentiles, errors.
struct LoadReport {
  var requests = 0
  var ok = 0
  var errors: [String: Int] = [:]
  var completionTokens = 0
  var wall = 0.0
  var ttft: [Double] = []
  var gaps: [Double] = []

  init(_ results: [RequestResult], wall: Double) {
    self.wall = wall
    requests = results.count
    for r in results {
      if let e = r.error {
        errors[e, default: 0] += 1
        continue
      }
      ok += 1
      completionTokens += r.completionTokens
      if let t = r.firstToken { ttft.append(t) }
      gaps += r.gaps
    }
    ttft.sort()
    gaps.sort()
  }

  var tokensPerSecond: Double { wall > 0 ? Double(completionTokens) / wall : 0 }

  /// Nearest-rank percentile of sorted values (nil when there are none).
  static func percentile(_ sorted: [Double], _ p: Double) -> Double? {
    guard !sorted.isEmpty else { return nil }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
  }

  private static func ms(_ v: Double?) -> String { v.map { String(format: "%.1f ms", $0 * 1000) } ?? "-" }
  private static func msJSON(_ v: Double?) -> JSONValue { v.map { .double(($0 * 1e6).rounded() / 1e3) } ?? .null }

  func table(setup: JSONObject) -> String {
    var lines: [String] = []
    let adapters = setup.int("adapters") ?? 0
    lines.append(
      "target \(setup.string("target") ?? "?"): \(setup.int("clients") ?? 0) clients × "
        + "\(setup.int("requests_per_client") ?? 0) requests, "
        + (adapters == 0 ? "no adapters" : "\(adapters) adapters") + ", \(setup.int("max_tokens") ?? 0) max tokens")
    lines.append("requests        \(requests) (\(ok) ok, \(requests - ok) failed)")
    lines.append(
      "throughput      \(String(format: "%.1f", tokensPerSecond)) completion tokens/s "
        + "(\(completionTokens) tokens in \(String(format: "%.2f", wall)) s wall)")
    lines.append(
      "first token     p50 \(Self.ms(Self.percentile(ttft, 50)))   p99 \(Self.ms(Self.percentile(ttft, 99)))")
    lines.append(
      "between tokens  p50 \(Self.ms(Self.percentile(gaps, 50)))   p99 \(Self.ms(Self.percentile(gaps, 99)))")
    if !errors.isEmpty {
      lines.append(
        "errors          " + errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
    }
    return lines.joined(separator: "\n")
  }

  func json(setup: JSONObject) -> JSONObject {
    var o = setup
    o["requests"] = .integer(Int64(requests))
    o["ok"] = .integer(Int64(ok))
    o["completion_tokens"] = .integer(Int64(completionTokens))
    o["wall_seconds"] = .double((wall * 1000).rounded() / 1000)
    o["tokens_per_second"] = .double((tokensPerSecond * 10).rounded() / 10)
    o["ttft_ms"] = .object([
      "p50": Self.msJSON(Self.percentile(ttft, 50)), "p99": Self.msJSON(Self.percentile(ttft, 99)),
    ])
    o["inter_token_ms"] = .object([
      "p50": Self.msJSON(Self.percentile(gaps, 50)), "p99": Self.msJSON(Self.percentile(gaps, 99)),
    ])
    var e = JSONObject()
    for (k, v) in errors.sorted(by: { $0.key < $1.key }) { e[k] = .integer(Int64(v)) }
    o["errors"] = .object(e)
    return o
  }
}

/// Byte strings interned to dense ids: the vocabulary's tokens first (id = token id), then any
/// string the merges mention that the vocabulary lacks (ids past the vocabulary, "virtual").
/// All text lives in one byte buffer; lookups hash raw bytes, so nothing is allocated per lookup.
///
/// Loading a vocabulary is bound by cache misses on this table, so the bulk loaders hash a batch
/// of strings and `touch` their slots first: the misses of a batch then overlap instead of
/// queueing one behind the other.
///
/// Built once by `Tokenizer.init`, read-only afterwards.
struct TokenTextIndex: Sendable {
  /// Concatenated UTF-8 of every interned string.  // (total bytes)
  private(set) var bytes: [UInt8] = []
  /// `starts[i]..<starts[i + 1]` is string i in `bytes`.  // (count + 1)
  private(set) var starts: [Int32] = [0]
  /// Open-addressing table, a power of two in size: each slot holds the string's hash in its
  /// high 32 bits and id + 1 in its low 32 bits; 0 is empty. The stored hash spares most
  /// probes a look at the text.  // (capacity)
  private var slots: [UInt64]
  private var mask: Int
  /// Where `intern(batch:)` leaves what it touched, so the compiler keeps the loads.
  private var touchSink: UInt64 = 0

  var count: Int { starts.count - 1 }

  init(expectedCount: Int) {
    var capacity = 16
    while capacity < expectedCount * 2 { capacity <<= 1 }
    slots = [UInt64](repeating: 0, count: capacity)
    mask = capacity - 1
    bytes.reserveCapacity(expectedCount * 8)
    starts.reserveCapacity(expectedCount + 1)
  }

  /// FNV-1a, folded to 32 bits.
  @inline(__always)
  static func hash(_ text: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text { h = (h ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return (h ^ (h >> 32)) & 0xFFFF_FFFF
  }

  /// The bytes of string `id`.
  @inline(__always)
  func text(_ id: Int32) -> ArraySlice<UInt8> {
    bytes[Int(starts[Int(id)])..<Int(starts[Int(id) + 1])]
  }

  /// Reads the memory a lookup of `hash` will read first (its slot, and the text of the string
  /// there), so that the later lookup finds it in cache. Returns a value only to keep the loads.
  @inline(__always)
  func touch(_ hash: UInt64) -> UInt64 {
    let entry = slots[Int(hash) & mask]
    guard entry != 0 else { return 0 }
    let start = Int(starts[Int(UInt32(truncatingIfNeeded: entry)) - 1])
    return start < bytes.count ? entry &+ UInt64(bytes[start]) : entry
  }

  func find(_ text: UnsafeBufferPointer<UInt8>) -> Int32? { find(text, hash: Self.hash(text)) }

  func find(_ text: String) -> Int32? {
    var text = text
    return text.withUTF8 { find($0) }
  }

  func find(_ text: UnsafeBufferPointer<UInt8>, hash h: UInt64) -> Int32? {
    var slot = Int(h) & mask
    while true {
      let entry = slots[slot]
      if entry == 0 { return nil }
      if entry >> 32 == h {
        let id = Int32(truncatingIfNeeded: entry) - 1
        if equals(id, text) { return id }
      }
      slot = (slot + 1) & mask
    }
  }

  @inline(__always)
  private func equals(_ id: Int32, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
    let start = Int(starts[Int(id)])
    let length = Int(starts[Int(id) + 1]) - start
    guard length == text.count else { return false }
    return bytes.withUnsafeBufferPointer { all in
      for i in 0..<length where all[start + i] != text[i] { return false }
      return true
    }
  }

  /// Adds `text` if it is new. Returns its id and whether it was added.
  @discardableResult
  mutating func intern(_ text: UnsafeBufferPointer<UInt8>) -> (id: Int32, inserted: Bool) {
    intern(text, hash: Self.hash(text))
  }

  mutating func intern(_ text: String) -> (id: Int32, inserted: Bool) {
    var text = text
    return text.withUTF8 { intern($0) }
  }

  mutating func intern(_ text: UnsafeBufferPointer<UInt8>, hash h: UInt64) -> (
    id: Int32, inserted: Bool
  ) {
    if (count + 1) * 2 > slots.count { grow() }
    var slot = Int(h) & mask
    while true {
      let entry = slots[slot]
      if entry == 0 { break }
      if entry >> 32 == h {
        let id = Int32(truncatingIfNeeded: entry) - 1
        if equals(id, text) { return (id, false) }
      }
      slot = (slot + 1) & mask
    }
    let id = Int32(count)
    bytes.append(contentsOf: text)
    starts.append(Int32(bytes.count))
    slots[slot] = h << 32 | UInt64(id + 1)
    return (id, true)
  }

  /// Interns many strings: `texts` concatenated, string i being `texts[ends[i - 1] ..< ends[i]]`
  /// (from 0 for the first). Appends each one's id and whether it was new to `results`.
  mutating func intern(
    batch texts: UnsafeBufferPointer<UInt8>, ends: UnsafeBufferPointer<Int32>,
    into results: inout [(id: Int32, inserted: Bool)]
  ) {
    var hashes = [UInt64](repeating: 0, count: ends.count)
    var touched: UInt64 = 0
    var start = 0
    for (i, end) in ends.enumerated() {
      hashes[i] = Self.hash(UnsafeBufferPointer(rebasing: texts[start..<Int(end)]))
      touched &+= touch(hashes[i])
      start = Int(end)
    }
    start = 0
    for (i, end) in ends.enumerated() {
      results.append(
        intern(UnsafeBufferPointer(rebasing: texts[start..<Int(end)]), hash: hashes[i]))
      start = Int(end)
    }
    touchSink = touched
  }

  private mutating func grow() {
    let old = slots
    slots = [UInt64](repeating: 0, count: old.count * 2)
    mask = slots.count - 1
    for entry in old where entry != 0 {
      var slot = Int(entry >> 32) & mask
      while slots[slot] != 0 { slot = (slot + 1) & mask }
      slots[slot] = entry
    }
  }
}

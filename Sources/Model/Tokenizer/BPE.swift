/// Byte-pair encoding of one pre-tokenized word, as llama.cpp's `llm_tokenizer_bpe_session`:
/// start from one symbol per byte (its byte-level stand-in), then repeatedly merge the adjacent
/// pair with the lowest merge rank — the leftmost on a tie — until no adjacent pair has a rank.
///
/// Symbols are ids of `TokenTextIndex` and the rank table is keyed by id pairs, so the loop
/// touches no strings. A merge whose result is not in the vocabulary yields a "virtual" id past
/// the vocabulary; if one survives to the end it falls back, as in llama.cpp, to the tokens of its
/// single bytes.
struct BytePairEncoder: Sendable {
  /// Merge rank and result per (left, right) pair: open addressing, `UInt64.max` = empty.
  private let keys: [UInt64]  // (capacity) left << 32 | right
  private let values: [UInt64]  // (capacity) rank << 32 | result
  private let mask: Int
  /// The initial symbol of each byte: the id of its byte-level stand-in.  // (256)
  private let byteSymbol: [Int32]
  /// llama.cpp's fallback for a symbol not in the vocabulary: the token whose text is that one
  /// byte of the symbol's (byte-level) text, or -1 to drop it.  // (256)
  private let singleByteToken: [Int32]
  private let index: TokenTextIndex
  let vocabCount: Int
  /// Number of distinct ranked pairs.
  let mergeCount: Int

  /// Reads the merges ("left right", rank = line) and interns every string they mention.
  /// A line without a separating space (after its first byte) is ignored, as in llama.cpp; a
  /// repeated pair keeps its first rank.
  init(merges: [String], index: inout TokenTextIndex, vocabCount: Int) {
    self.vocabCount = vocabCount
    var byteSymbol = [Int32](repeating: 0, count: 256)
    var singleByteToken = [Int32](repeating: -1, count: 256)
    var scratch: [UInt8] = []
    for byte in 0..<256 {
      scratch.removeAll(keepingCapacity: true)
      ByteLevel.encode(UInt8(byte), into: &scratch)
      byteSymbol[byte] = scratch.withUnsafeBufferPointer { index.intern($0).id }
      var raw = UInt8(byte)
      if let id = withUnsafePointer(
        to: &raw, { index.find(UnsafeBufferPointer(start: $0, count: 1)) }),
        Int(id) < vocabCount
      {
        singleByteToken[byte] = id
      }
    }

    var capacity = 16
    while capacity < merges.count * 2 { capacity <<= 1 }
    var keys = [UInt64](repeating: .max, count: capacity)
    var values = [UInt64](repeating: 0, count: capacity)
    let mask = capacity - 1
    var count = 0
    // In batches: each merge "left right" becomes the strings left, right and leftright.
    var batch: [UInt8] = []
    var ends: [Int32] = []
    var ranks: [Int] = []
    var interned: [(id: Int32, inserted: Bool)] = []
    for batchStart in stride(from: 0, to: merges.count, by: 128) {
      batch.removeAll(keepingCapacity: true)
      ends.removeAll(keepingCapacity: true)
      ranks.removeAll(keepingCapacity: true)
      for rank in batchStart..<min(batchStart + 128, merges.count) {
        var line = merges[rank]
        line.withUTF8 { text in
          guard text.count > 1, let space = text[1...].firstIndex(of: UInt8(ascii: " ")) else {
            return
          }
          let left = text[..<space]
          let right = text[(space + 1)...]
          batch.append(contentsOf: left)
          ends.append(Int32(batch.count))
          batch.append(contentsOf: right)
          ends.append(Int32(batch.count))
          batch.append(contentsOf: left)
          batch.append(contentsOf: right)
          ends.append(Int32(batch.count))
          ranks.append(rank)
        }
      }
      interned.removeAll(keepingCapacity: true)
      batch.withUnsafeBufferPointer { b in
        ends.withUnsafeBufferPointer { e in index.intern(batch: b, ends: e, into: &interned) }
      }
      for (k, rank) in ranks.enumerated() {
        let left = interned[3 * k].id
        let right = interned[3 * k + 1].id
        let result = interned[3 * k + 2].id
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        var slot = Self.slot(key, mask)
        var repeated = false
        while keys[slot] != .max {
          if keys[slot] == key {
            repeated = true  // the first rank wins
            break
          }
          slot = (slot + 1) & mask
        }
        if repeated { continue }
        keys[slot] = key
        values[slot] = UInt64(rank) << 32 | UInt64(UInt32(bitPattern: result))
        count += 1
      }
    }
    self.keys = keys
    self.values = values
    self.mask = mask
    self.mergeCount = count
    self.byteSymbol = byteSymbol
    self.singleByteToken = singleByteToken
    self.index = index
  }

  @inline(__always)
  private static func slot(_ key: UInt64, _ mask: Int) -> Int {
    Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
  }

  /// The rank and result of merging `left` then `right`, if they merge.
  @inline(__always)
  func merge(_ left: Int32, _ right: Int32) -> (rank: Int32, result: Int32)? {
    let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    var slot = Self.slot(key, mask)
    while true {
      let k = keys[slot]
      if k == key {
        let v = values[slot]
        return (Int32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: v))
      }
      if k == .max { return nil }
      slot = (slot + 1) & mask
    }
  }

  /// Scratch space for `encode`, reused across the words of one `Tokenizer.encode` call.
  struct Workspace {
    /// Per symbol: its id (-1 once merged into its left neighbour), and the chain links.
    var ids: [Int32] = []  // (symbols)
    var next: [Int32] = []  // (symbols)
    var prev: [Int32] = []  // (symbols)
    /// Candidate merges, a binary min-heap on (rank, left).  // (≤ 2 × symbols)
    var heap: [Bigram] = []
    /// The word's byte-level text, for the whole-word lookup.  // (≤ 2 × bytes)
    var text: [UInt8] = []
  }

  /// A candidate merge of symbols `left` and `right`; stale once either symbol's id changed.
  struct Bigram {
    var rank: Int32
    var left: Int32
    var right: Int32
    var leftID: Int32
    var rightID: Int32
    var result: Int32

    @inline(__always)
    func precedes(_ other: Bigram) -> Bool {
      rank < other.rank || (rank == other.rank && left < other.left)
    }
  }

  /// Appends the tokens of one word (its raw UTF-8 bytes) to `out`. With `wholeWords`, a word
  /// that is itself a token is taken as is (llama.cpp's `ignore_merges`).
  func encode(
    _ word: UnsafeBufferPointer<UInt8>, wholeWords: Bool, _ w: inout Workspace,
    into out: inout [Int32]
  ) {
    guard !word.isEmpty else { return }
    if word.count == 1 {
      emit(byteSymbol[Int(word[0])], into: &out)
      return
    }
    if wholeWords {
      w.text.removeAll(keepingCapacity: true)
      for byte in word { ByteLevel.encode(byte, into: &w.text) }
      if let id = w.text.withUnsafeBufferPointer({ index.find($0) }), Int(id) < vocabCount {
        out.append(id)
        return
      }
    }

    let n = word.count
    w.ids.removeAll(keepingCapacity: true)
    w.next.removeAll(keepingCapacity: true)
    w.prev.removeAll(keepingCapacity: true)
    w.heap.removeAll(keepingCapacity: true)
    for i in 0..<n {
      w.ids.append(byteSymbol[Int(word[i])])
      w.prev.append(Int32(i - 1))
      w.next.append(i + 1 < n ? Int32(i + 1) : -1)
    }
    for i in 1..<n { consider(Int32(i - 1), Int32(i), &w) }

    while let top = pop(&w.heap) {
      let l = Int(top.left)
      let r = Int(top.right)
      guard w.ids[l] == top.leftID, w.ids[r] == top.rightID else { continue }  // stale
      w.ids[l] = top.result
      w.ids[r] = -1
      let after = w.next[r]
      w.next[l] = after
      if after >= 0 { w.prev[Int(after)] = top.left }
      if w.prev[l] >= 0 { consider(w.prev[l], top.left, &w) }
      if after >= 0 { consider(top.left, after, &w) }
    }

    var i: Int32 = 0
    while i >= 0 {
      emit(w.ids[Int(i)], into: &out)
      i = w.next[Int(i)]
    }
  }

  @inline(__always)
  private func consider(_ left: Int32, _ right: Int32, _ w: inout Workspace) {
    let a = w.ids[Int(left)]
    let b = w.ids[Int(right)]
    guard let m = merge(a, b) else { return }
    push(
      Bigram(rank: m.rank, left: left, right: right, leftID: a, rightID: b, result: m.result),
      &w.heap)
  }

  @inline(__always)
  private func emit(_ id: Int32, into out: inout [Int32]) {
    if Int(id) < vocabCount {
      out.append(id)
      return
    }
    for byte in index.text(id) where singleByteToken[Int(byte)] >= 0 {
      out.append(singleByteToken[Int(byte)])
    }
  }

  private func push(_ item: Bigram, _ heap: inout [Bigram]) {
    heap.append(item)
    var child = heap.count - 1
    while child > 0 {
      let parent = (child - 1) / 2
      guard heap[child].precedes(heap[parent]) else { break }
      heap.swapAt(child, parent)
      child = parent
    }
  }

  private func pop(_ heap: inout [Bigram]) -> Bigram? {
    guard let last = heap.popLast() else { return nil }
    guard !heap.isEmpty else { return last }
    let top = heap[0]
    heap[0] = last
    var parent = 0
    let count = heap.count
    while true {
      let left = 2 * parent + 1
      if left >= count { break }
      let right = left + 1
      let child = right < count && heap[right].precedes(heap[left]) ? right : left
      guard heap[child].precedes(heap[parent]) else { break }
      heap.swapAt(child, parent)
      parent = child
    }
    return top
  }
}

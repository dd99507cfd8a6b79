/// A line chart rasterized into a `PNGImage`: several series against one x axis, y from 0 to
/// `yMax`, grid lines, tick labels and a legend in a built-in 3×5 pixel font (upper-case
/// letters, digits and a little punctuation; other characters are drawn as blanks).
struct LinePlot {
  /// One curve: its points (x, y), drawn in order; a point whose y is NaN breaks the line.
  struct Series {
    var label: String
    var color: PNGImage.RGB
    var points: [(x: Double, y: Double)]
  }

  var title: String
  var xLabel: String
  var series: [Series]
  /// The y axis runs from 0 to this; values above are clipped to the frame.
  var yMax = 1.0
  /// Tick labels on the y axis: value → text.
  var yTicks: [(Double, String)] = [(0, "0%"), (0.25, "25%"), (0.5, "50%"), (0.75, "75%"), (1, "100%")]
  var width = 800
  var height = 480

  /// The chart as an image.
  func render() -> PNGImage {
    var img = PNGImage(width: width, height: height)
    let left = 70, right = width - 20, top = 40, bottom = height - 90
    let xs = series.flatMap { $0.points.map(\.x) }
    let xMin = xs.min() ?? 0
    var xMax = xs.max() ?? 1
    if xMax <= xMin { xMax = xMin + 1 }
    func px(_ x: Double) -> Int { left + Int(((x - xMin) / (xMax - xMin) * Double(right - left)).rounded()) }
    func py(_ y: Double) -> Int {
      let c = min(max(y, 0), yMax)
      return bottom - Int((c / yMax * Double(bottom - top)).rounded())
    }
    // Grid, ticks and frame.
    for (v, text) in yTicks {
      let y = py(v)
      for x in left...right { img.set(x, y, .grey) }
      Self.text(&img, text, x: left - 8 - Self.textWidth(text, scale: 2), y: y - 5, scale: 2, color: .black)
    }
    for k in 0...5 {
      let v = xMin + (xMax - xMin) * Double(k) / 5
      let x = px(v)
      for y in top...bottom { img.set(x, y, .grey) }
      let t = Self.format(v)
      Self.text(&img, t, x: x - Self.textWidth(t, scale: 2) / 2, y: bottom + 8, scale: 2, color: .black)
    }
    for x in left...right {
      img.set(x, bottom, .black)
      img.set(x, top, .black)
    }
    for y in top...bottom {
      img.set(left, y, .black)
      img.set(right, y, .black)
    }
    Self.text(&img, title, x: left, y: 12, scale: 3, color: .black)
    Self.text(
      &img, xLabel, x: (left + right - Self.textWidth(xLabel, scale: 2)) / 2, y: bottom + 26, scale: 2, color: .black)
    // Curves, 2 px thick, with a dot on each point.
    for s in series {
      var prev: (Int, Int)?
      for p in s.points {
        guard p.y.isFinite else {
          prev = nil
          continue
        }
        let q = (px(p.x), py(p.y))
        if let a = prev { Self.line(&img, a, q, s.color) }
        for dx in -2...2 { for dy in -2...2 { img.set(q.0 + dx, q.1 + dy, s.color) } }
        prev = q
      }
    }
    // Legend below the axis label.
    var lx = left
    for s in series {
      for dx in 0..<20 { for dy in 0..<3 { img.set(lx + dx, height - 30 + dy, s.color) } }
      Self.text(&img, s.label, x: lx + 26, y: height - 34, scale: 2, color: .black)
      lx += 26 + Self.textWidth(s.label, scale: 2) + 30
    }
    return img
  }

  static func format(_ v: Double) -> String {
    v == v.rounded()
      ? String(Int(v)) : String(Int((v * 10).rounded()) / 10) + "." + String(Int((v * 10).rounded()) % 10)
  }

  /// A 2-pixel-wide line from a to b (Bresenham).
  static func line(_ img: inout PNGImage, _ a: (Int, Int), _ b: (Int, Int), _ c: PNGImage.RGB) {
    var (x0, y0) = a
    let (x1, y1) = b
    let dx = abs(x1 - x0), dy = -abs(y1 - y0)
    let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
    var err = dx + dy
    while true {
      img.set(x0, y0, c)
      img.set(x0 + 1, y0, c)
      img.set(x0, y0 + 1, c)
      if x0 == x1 && y0 == y1 { break }
      let e2 = 2 * err
      if e2 >= dy {
        err += dy
        x0 += sx
      }
      if e2 <= dx {
        err += dx
        y0 += sy
      }
    }
  }

  static func textWidth(_ s: String, scale: Int) -> Int { s.count * 4 * scale }

  /// Draws `s` (upper-cased) with its top-left corner at (x, y), each font pixel `scale` wide.
  static func text(_ img: inout PNGImage, _ s: String, x: Int, y: Int, scale: Int, color: PNGImage.RGB) {
    var cx = x
    for ch in s.uppercased() {
      if let g = font[ch] {
        for (i, bit) in g.enumerated() where bit == "#" {
          let gx = i % 3, gy = i / 3
          for ox in 0..<scale { for oy in 0..<scale { img.set(cx + gx * scale + ox, y + gy * scale + oy, color) } }
        }
      }
      cx += 4 * scale
    }
  }

  /// 3×5 glyphs, row by row.
  static let font: [Character: String] = [
    "0": "####.##.##.####", "1": ".#.##..#..#.###", "2": "###..#####..###", "3": "###..####..####",
    "4": "#.##.####..#..#", "5": "####..###..####", "6": "####..####.####", "7": "###..#..#..#..#",
    "8": "####.#####.####", "9": "####.####..####", "A": ".#.#.#####.##.#", "B": "##.#.###.#.###.",
    "C": ".###..#..#...##", "D": "##.#.##.##.###.", "E": "####..##.#..###", "F": "####..##.#..#..",
    "G": ".###..#.##.#.##", "H": "#.##.#####.##.#", "I": "###.#..#..#.###", "J": "..#..#..##.#.#.",
    "K": "#.##.###.#.##.#", "L": "#..#..#..#..###", "M": "#.########.##.#", "N": "##.#.##.##.##.#",
    "O": ".#.#.##.##.#.#.", "P": "##.#.###.#..#..", "Q": ".#.#.##.###..##", "R": "##.#.###.#.##.#",
    "S": ".###...#...###.", "T": "###.#..#..#..#.", "U": "#.##.##.##.####", "V": "#.##.##.##.#.#.",
    "W": "#.##.########.#", "X": "#.##.#.#.#.##.#", "Y": "#.##.#.#..#..#.", "Z": "###..#.#.#..###",
    "%": "#.#..#.#.#..#.#", ".": ".............#.", "-": "......###......", "+": "....#.###.#....",
    "(": ".#.#..#..#...#.", ")": ".#...#..#..#.#.", "/": "..#..#.#.#..#..", ":": "....#.....#....",
    "=": "...###...###...", ",": "..........#.#..", "'": ".#..#..........", "×": "...#.#.#.#.#...",
  ]
}

// swift-tools-version:6.0
import PackageDescription

/// Release builds of the hot targets use -Ounchecked only where `make bench` showed it pays
/// (see README, "Speed"); everything else builds with the default -O.
let package = Package(
  name: "lorad",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "lorad", targets: ["lorad"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
  ],
  targets: [
    .systemLibrary(
      name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(
      name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
      providers: [.apt(["libsqlite3-dev"])]),
    .systemLibrary(
      name: "CLibUV", path: "Sources/CLibUV", pkgConfig: "libuv",
      providers: [.apt(["libuv1-dev"])]),
    .target(
      name: "CKernels", path: "Sources/CKernels",
      cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]),
    .target(name: "Tensor", dependencies: ["CKernels", "CBLAS"]),
    .target(name: "Model", dependencies: ["Tensor", "CKernels"]),
    .target(name: "Adapters", dependencies: ["Tensor", "Model"]),
    .target(name: "Engine", dependencies: ["Model", "Adapters", "CKernels"]),
    .target(name: "Learning", dependencies: ["CSQLite", "Model", "Adapters"]),
    .target(name: "Server", dependencies: ["CLibUV", "Engine", "Learning", "Model", "Adapters"]),
    .executableTarget(
      name: "lorad",
      dependencies: [
        "Model", "Tensor", "Adapters", "Engine", "Learning", "Server",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),
    .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"], resources: [.copy("Fixtures")]),
    // Test helpers shared by the test targets (the tiny model written as a real GGUF).
    .target(name: "TestSupport", dependencies: ["Model", "Tensor", "CKernels"], path: "Tests/TestSupport"),
    .testTarget(
      name: "AdaptersTests", dependencies: ["Adapters", "CKernels", "Model", "Tensor", "TestSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "ModelTests", dependencies: ["Model", "Tensor", "CKernels", "TestSupport"],
      resources: [.copy("Fixtures")]),
    .testTarget(
      name: "ServerTests", dependencies: ["Server", "Engine", "Learning", "Adapters", "Model", "TestSupport"]),
    .testTarget(
      name: "EngineTests", dependencies: ["Engine", "Model", "Adapters", "TestSupport"]),
    .testTarget(
      name: "LearningTests", dependencies: ["Learning", "Model", "Adapters", "TestSupport"],
      resources: [.copy("Fixtures")]),
    // lorad's own pieces (lorad simulate's simulated user, PNG writer, plot); Fixtures holds the
    // script that made the expected bytes, not files the tests read.
    .testTarget(name: "LoradTests", dependencies: ["lorad", "Learning"], exclude: ["Fixtures"]),
  ],
  swiftLanguageModes: [.v6]
)

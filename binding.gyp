{
  "targets": [
    {
      "target_name": "torch_binding",
      "sources": ["native/binding.cc", "native/distributed.cc", "native/cuda-graph.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node scripts/find-libtorch.mjs --include)"
      ],
      "defines": [
        "NAPI_EXPERIMENTAL",
        "NAPI_CPP_EXCEPTIONS",
        "<!@(node scripts/find-libtorch.mjs --defines)"
      ],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter"],
      "ldflags": ["<!@(node scripts/find-libtorch.mjs --ldflags)"],
      "libraries": ["<!@(node scripts/find-libtorch.mjs --libs)"]
    }
  ]
}

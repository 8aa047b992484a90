// The CUDA emulator's stand-in for <cuda_runtime_api.h> (see gemma3_emu/cuda.hpp).
#pragma once
#include "gemma3_emu/cuda.hpp"

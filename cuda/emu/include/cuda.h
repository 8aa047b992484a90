// The CUDA emulator's stand-in for <cuda.h> (see gemma3_emu/cuda.hpp).
#pragma once
#include "gemma3_emu/cuda.hpp"

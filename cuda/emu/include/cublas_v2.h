// The CUDA emulator's stand-in for <cublas_v2.h> (see gemma3_emu/cublas.hpp).
#pragma once
#include "gemma3_emu/cublas.hpp"

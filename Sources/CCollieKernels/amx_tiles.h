// The one AMX tile configuration of this target, loaded by the GEMM's microkernel (gemm_amx.c) and the peak measurement
// (peak.c). A thread keeps its configuration until it loads another, and the microkernel loads it once per thread, so
// every user loads this same one and none releases it.
#ifndef COLLIE_AMX_TILES_H
#define COLLIE_AMX_TILES_H

#include <stdint.h>
#include <string.h>

/// ldtilecfg's 64-byte operand (palette 1): per tile its rows and bytes per row.
typedef struct __attribute__((packed, aligned(64))) {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} collie_tile_config;

/// Tiles 0–3: C's quarters (16 rows × 16 float32); 4–5: A's halves (16 rows × 32 bfloat16); 6–7: B's halves (16 k pairs
/// × 16 columns' pairs). Every tile is 16 rows of 64 bytes.
static inline collie_tile_config collie_amx_tile_config(void) {
    collie_tile_config config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int t = 0; t < 8; t++) {
        config.rows[t] = 16;
        config.colsb[t] = 64;
    }
    return config;
}

#endif

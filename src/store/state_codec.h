/* The compact, versioned encoding of kefu's state in Redis (docs/STATE.md). */
#ifndef KEFU_STORE_STATE_CODEC_H
#define KEFU_STORE_STATE_CODEC_H
#endif

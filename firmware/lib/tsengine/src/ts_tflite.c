/*
 * tinysift engine: the .tflite quantization reader (ts_tflite.h).
 *
 * Flatbuffer layout (flatbuffers' binary format): the buffer starts with a uoffset (u32) to
 * the root table; a table starts with an soffset (i32) back to its vtable; a vtable is u16
 * vtable bytes, u16 table bytes, then one u16 offset per field (0: field absent); an offset
 * field holds a u32 relative to its own position; a vector is a u32 count followed by its
 * elements (tables as u32 offsets relative to each element's position). Field numbers are
 * those of tensorflow/lite/schema/schema.fbs:
 *   Model: 1 operator_codes, 2 subgraphs        SubGraph: 0 tensors, 3 operators
 *   Tensor: 4 quantization                      QuantizationParameters: 2 scale, 3 zero_point
 *   Operator: 0 opcode_index, 1 inputs, 2 outputs
 *   OperatorCode: 0 deprecated_builtin_code (int8), 3 builtin_code (int32)
 */
#include <string.h>

#include "ts_tflite.h"

typedef struct {
    const uint8_t *b;
    size_t n;
} fb_t;

/* Little-endian reads; 0 when [pos, pos + size) is not inside the buffer. */
static int rd_u32(const fb_t *f, size_t pos, uint32_t *v)
{
    if (pos > f->n || f->n - pos < 4u) {
        return 0;
    }
    *v = (uint32_t)f->b[pos] | ((uint32_t)f->b[pos + 1u] << 8) |
         ((uint32_t)f->b[pos + 2u] << 16) | ((uint32_t)f->b[pos + 3u] << 24);
    return 1;
}

static int rd_u16(const fb_t *f, size_t pos, uint32_t *v)
{
    if (pos > f->n || f->n - pos < 2u) {
        return 0;
    }
    *v = (uint32_t)f->b[pos] | ((uint32_t)f->b[pos + 1u] << 8);
    return 1;
}

/* The position a uoffset at pos points to. */
static int deref(const fb_t *f, size_t pos, size_t *target)
{
    uint32_t off;
    if (!rd_u32(f, pos, &off) || (uint64_t)pos + off >= (uint64_t)f->n) {
        return 0;
    }
    *target = pos + off;
    return 1;
}

/* Field `field` of the table at `table`: its position, or 0 in *pos when absent. */
static int field_pos(const fb_t *f, size_t table, uint32_t field, size_t *pos)
{
    uint32_t soff, vt_bytes, off;
    int64_t vt;
    if (!rd_u32(f, table, &soff)) {
        return 0;
    }
    vt = (int64_t)table - (int64_t)(int32_t)soff;
    if (vt < 0 || (uint64_t)vt >= (uint64_t)f->n || !rd_u16(f, (size_t)vt, &vt_bytes)) {
        return 0;
    }
    *pos = 0;
    if (4u + 2u * field + 2u > vt_bytes) {
        return 1; /* beyond this vtable: absent */
    }
    if (!rd_u16(f, (size_t)vt + 4u + 2u * field, &off)) {
        return 0;
    }
    if (off != 0u) {
        if ((uint64_t)table + off >= (uint64_t)f->n) {
            return 0;
        }
        *pos = table + off;
    }
    return 1;
}

/* A reference field (table or vector): where it points; 0 when absent or malformed. */
static int field_ref(const fb_t *f, size_t table, uint32_t field, size_t *target)
{
    size_t pos;
    return field_pos(f, table, field, &pos) && pos != 0 && deref(f, pos, target);
}

/* A vector at vec of elements of elem bytes: its count and first element. */
static int vector(const fb_t *f, size_t vec, uint32_t elem, uint32_t *count, size_t *data)
{
    if (!rd_u32(f, vec, count)) {
        return 0;
    }
    *data = vec + 4u;
    return (uint64_t)*data + (uint64_t)*count * elem <= (uint64_t)f->n;
}

/* Element i of a vector of tables. */
static int vector_table(const fb_t *f, size_t vec, uint32_t i, size_t *table)
{
    uint32_t count;
    size_t data;
    return vector(f, vec, 4u, &count, &data) && i < count && deref(f, data + 4u * (size_t)i, table);
}

/* The root Model table and subgraph 0 of it. */
static int subgraph0(const fb_t *f, size_t *model, size_t *graph)
{
    size_t subgraphs;
    if (f->b == NULL || f->n < 8u || memcmp(f->b + 4, "TFL3", 4) != 0 || !deref(f, 0, model)) {
        return 0;
    }
    return field_ref(f, *model, 2u, &subgraphs) && vector_table(f, subgraphs, 0u, graph);
}

static float as_float(uint32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static int scale_ok(float s)
{
    return s > 0.0f && s <= 3.0e38f;
}

/* Tensor t of the subgraph: its scale vector (position, count) and zero_point[0]. */
static int tensor_quant(const fb_t *f, size_t graph, int32_t t, size_t *scales,
                        uint32_t *n_scales, int32_t *zero_point)
{
    size_t tensors, tensor, quant, vec, data;
    uint32_t n_zp, lo, hi;
    *n_scales = 0;
    *zero_point = 0;
    if (t < 0 || !field_ref(f, graph, 0u, &tensors) ||
        !vector_table(f, tensors, (uint32_t)t, &tensor)) {
        return 0;
    }
    if (!field_ref(f, tensor, 4u, &quant)) {
        return 1; /* no quantization: no scales */
    }
    if (field_ref(f, quant, 2u, &vec)) {
        if (!vector(f, vec, 4u, n_scales, scales)) {
            return 0;
        }
    }
    if (field_ref(f, quant, 3u, &vec)) {
        if (!vector(f, vec, 8u, &n_zp, &data)) {
            return 0;
        }
        if (n_zp > 0u) { /* int64: the low word, checked to be a sign extension */
            if (!rd_u32(f, data, &lo) || !rd_u32(f, data + 4u, &hi) ||
                hi != ((lo & 0x80000000u) ? 0xFFFFFFFFu : 0u)) {
                return 0;
            }
            *zero_point = (int32_t)lo;
        }
    }
    return 1;
}

/* Operator i of the subgraph and its inputs[] / outputs[] vectors. */
static int op_tensors(const fb_t *f, size_t graph, uint32_t i, size_t *op, size_t *in_data,
                      uint32_t *n_in, size_t *out_data, uint32_t *n_out)
{
    size_t ops, vec;
    if (!field_ref(f, graph, 3u, &ops) || !vector_table(f, ops, i, op)) {
        return 0;
    }
    if (!field_ref(f, *op, 1u, &vec) || !vector(f, vec, 4u, n_in, in_data)) {
        return 0;
    }
    return field_ref(f, *op, 2u, &vec) && vector(f, vec, 4u, n_out, out_data);
}

static int op_code(const fb_t *f, size_t model, size_t op, uint32_t *code)
{
    size_t pos, codes, oc;
    uint32_t index = 0, dep = 0, builtin = 0;
    if (!field_pos(f, op, 0u, &pos)) {
        return 0;
    }
    if (pos != 0 && !rd_u32(f, pos, &index)) {
        return 0;
    }
    if (!field_ref(f, model, 1u, &codes) || !vector_table(f, codes, index, &oc)) {
        return 0;
    }
    if (!field_pos(f, oc, 0u, &pos)) {
        return 0;
    }
    if (pos != 0) {
        if (pos >= f->n) {
            return 0;
        }
        dep = f->b[pos];
        dep = dep > 127u ? 0u : dep; /* an int8 field: negative values mean nothing */
    }
    if (!field_pos(f, oc, 3u, &pos)) {
        return 0;
    }
    if (pos != 0 && !rd_u32(f, pos, &builtin)) {
        return 0;
    }
    *code = builtin > dep ? builtin : dep;
    return 1;
}

ts_status_t ts_tflite_num_ops(const uint8_t *tflite, size_t bytes, uint32_t *count)
{
    fb_t f;
    size_t model, graph, ops, data;
    if (tflite == NULL || count == NULL) {
        return TS_ERR_NULL;
    }
    f.b = tflite;
    f.n = bytes;
    if (!subgraph0(&f, &model, &graph) || !field_ref(&f, graph, 3u, &ops) ||
        !vector(&f, ops, 4u, count, &data)) {
        return TS_ERR_DATA;
    }
    return TS_OK;
}

ts_status_t ts_tflite_op(const uint8_t *tflite, size_t bytes, uint32_t op_index,
                         ts_tflite_op_t *out, float *weight_scales, uint32_t cap)
{
    fb_t f;
    size_t model, graph, op, in_data, out_data, scales;
    uint32_t n_in, n_out, n_scales, u, c;
    int32_t zp;
    if (tflite == NULL || out == NULL) {
        return TS_ERR_NULL;
    }
    memset(out, 0, sizeof *out);
    f.b = tflite;
    f.n = bytes;
    if (!subgraph0(&f, &model, &graph) ||
        !op_tensors(&f, graph, op_index, &op, &in_data, &n_in, &out_data, &n_out) ||
        n_in < 1u || n_out < 1u || !op_code(&f, model, op, &out->builtin_code)) {
        return TS_ERR_DATA;
    }
    /* inputs[0] and outputs[0]: the activations */
    if (!rd_u32(&f, in_data, &u) || !tensor_quant(&f, graph, (int32_t)u, &scales, &n_scales, &zp) ||
        n_scales < 1u || !rd_u32(&f, scales, &u)) {
        return TS_ERR_DATA;
    }
    out->input_scale = as_float(u);
    out->input_zero_point = zp;
    if (!rd_u32(&f, out_data, &u) ||
        !tensor_quant(&f, graph, (int32_t)u, &scales, &n_scales, &zp) || n_scales < 1u ||
        !rd_u32(&f, scales, &u)) {
        return TS_ERR_DATA;
    }
    out->output_scale = as_float(u);
    out->output_zero_point = zp;
    if (!scale_ok(out->input_scale) || !scale_ok(out->output_scale)) {
        return TS_ERR_PARAM;
    }
    if (out->builtin_code != TS_TFLITE_CONV_2D && out->builtin_code != TS_TFLITE_DEPTHWISE_CONV_2D &&
        out->builtin_code != TS_TFLITE_FULLY_CONNECTED) {
        return TS_OK;
    }
    /* inputs[1]: the weights */
    if (n_in < 2u || !rd_u32(&f, in_data + 4u, &u) ||
        !tensor_quant(&f, graph, (int32_t)u, &scales, &n_scales, &zp) || n_scales < 1u) {
        return TS_ERR_DATA;
    }
    out->weight_scales = n_scales;
    if (weight_scales == NULL) {
        return TS_OK;
    }
    if (n_scales > cap) {
        return TS_ERR_ARENA;
    }
    for (c = 0; c < n_scales; ++c) {
        if (!rd_u32(&f, scales + 4u * (size_t)c, &u)) {
            return TS_ERR_DATA;
        }
        weight_scales[c] = as_float(u);
        if (!scale_ok(weight_scales[c])) {
            return TS_ERR_PARAM;
        }
    }
    return TS_OK;
}

static uint32_t builtin_of(uint8_t op)
{
    switch (op) {
    case TS_OP_CONV_2D: return TS_TFLITE_CONV_2D;
    case TS_OP_DEPTHWISE_CONV_2D: return TS_TFLITE_DEPTHWISE_CONV_2D;
    case TS_OP_FULLY_CONNECTED: return TS_TFLITE_FULLY_CONNECTED;
    case TS_OP_AVERAGE_POOL_2D: return TS_TFLITE_AVERAGE_POOL_2D;
    case TS_OP_MAX_POOL_2D: return TS_TFLITE_MAX_POOL_2D;
    case TS_OP_RESHAPE: return TS_TFLITE_RESHAPE;
    case TS_OP_SOFTMAX: return TS_TFLITE_SOFTMAX;
    case TS_OP_MEAN: return TS_TFLITE_MEAN;
    case TS_OP_QUANTIZE: return TS_TFLITE_QUANTIZE;
    case TS_OP_ADD: return TS_TFLITE_ADD;
    case TS_OP_MUL: return TS_TFLITE_MUL;
    case TS_OP_PAD: return TS_TFLITE_PAD;
    case TS_OP_CONCATENATION: return TS_TFLITE_CONCATENATION;
    case TS_OP_LOGISTIC: return TS_TFLITE_LOGISTIC;
    case TS_OP_HARD_SWISH: return TS_TFLITE_HARD_SWISH;
    default: return 0xFFFFFFFFu;
    }
}

ts_status_t ts_tflite_check_model(const uint8_t *tflite, size_t bytes, const ts_model_t *model)
{
    uint32_t n, i;
    ts_status_t st;
    if (model == NULL || model->layers == NULL) {
        return TS_ERR_NULL;
    }
    st = ts_tflite_num_ops(tflite, bytes, &n);
    if (st != TS_OK) {
        return st;
    }
    /* the table's layers, after tflite_first_op edge operators, then at most a DEQUANTIZE */
    if (model->tflite_first_op > 1u ||
        n < model->num_layers + model->tflite_first_op ||
        n > model->num_layers + model->tflite_first_op + 1u) {
        return TS_ERR_DATA;
    }
    for (i = 0; i < model->num_layers; ++i) {
        const ts_layer_t *l = &model->layers[i];
        ts_tflite_op_t op;
        st = ts_tflite_op(tflite, bytes, i + model->tflite_first_op, &op, NULL, 0u);
        if (st != TS_OK) {
            return st;
        }
        if (op.builtin_code != builtin_of(l->op) || op.input_zero_point != l->input_zero_point ||
            op.output_zero_point != l->output_zero_point) {
            return TS_ERR_DATA;
        }
    }
    return TS_OK;
}

/* A stack of block steps on the GPU, every layer in ONE kernel, a cluster of
 * C thread blocks of 1,024 threads per row (compute 9.0+): the maths of
 * ops/stack_step.c (mb_block_step layer after layer).
 *
 * Why: a narrow model's step at a few rows is latency. The DNA model
 * (d_model 256, 8 layers) ran ~35 dependent kernels a token (four split
 * kernels a layer, the head and the draw), 70 us on an H100, while its
 * 13 MB of weights stay in L2. Here block c of row b's cluster owns d_inner
 * channels [c CH, (c+1) CH), CH = 32: their rows of in_proj (x and z),
 * their conv and scan states, their columns of x_proj and out_proj; every
 * block keeps its own copy of the residual row. A layer:
 *   1  RMSNorm of the residual, the block's in_proj rows (warp w:
 *      channel w's x and z rows), conv + SiLU: local (one row: each warp
 *      sums the squares itself and lane 0 of warp w makes the conv, no
 *      barrier between; several rows: warp r sums row r's squares, and
 *      after a block barrier a thread a row and channel makes the convs)
 *   2  x_proj's partial sums over the block's channels (several rows: one
 *      reduce-scatter of all the rows' sums a warp) -> cluster barrier
 *      -> each block adds the C partials through distributed shared memory
 *      (one row a cluster: each block pushes its partials into every
 *      other block's slots, see stk_push4, and adds them once its own
 *      mbarrier has counted them)
 *   3  dt_proj and softplus, the scan and the gate, a channel's 16 states
 *      on 16 neighbouring lanes (from 4 rows a cluster, the dt and y sums
 *      of a thread's rows by reduce-scatters over those lanes): local
 *   4  out_proj's partial sums -> cluster barrier -> each block adds the C
 *      partials to its residual (one row: pushed, as in 2; from
 *      STK_RS_ROWS rows a cluster: each block sums a slice of the outputs
 *      and writes it into every block, then a third cluster barrier; up to
 *      STK_RP_ROWS rows, both halves pushed)
 * A cluster's rows (1, 2, 4, 6, 8, 10 or 12) are taken a group at a time in each phase,
 * the group's loads and sums interleaved; a gather over the cluster is a
 * thread an output, the ranks in turn (stk_cluster_sum); each cluster
 * barrier is split into arrive and wait around the states' global traffic.
 * Two cluster barriers (three from STK_RS_ROWS rows a cluster) and four
 * block barriers a layer (there were seven: the norm, the conv and delta
 * each had a phase of their own, session 31). A partial buffer is rewritten only after
 * the next barrier, which every reader of its old contents has passed.
 * The weights are staged in shared memory, the next layer's while this one
 * runs (x_proj, out_proj, dt_proj, the norm, conv, A and D double-buffered
 * from the layer's start; in_proj single, refilled once this layer's rows
 * are read): from their pack (mb_stack_step_pack: a block's part of a
 * layer in two runs) by two bulk copies, or where the caller has no pack,
 * gathered by cp.async copies from every thread. The scan states stay in
 * registers, the conv taps of the cluster's rows in shared memory. Block 0
 * writes the last residuals.
 *
 * The several-rows indexing has a float64 model, every block and thread
 * transcribed: scripts/stack_step_rows_check.py.
 *
 * History (H100, bench_generate): a first kernel of 256 threads a block,
 * the weights in registers and up to 8 rows a cluster, profiled at the
 * DNA width as a chain of ~1,400 dependent instructions a warp a layer at
 * 8 warps an SM. This one has four times the warps, each with half the
 * instructions: the same 75 us a token at one row of the DNA model, 30
 * against 32 us at mamba-dna's default (d128 x 4), and 77 against 158 us
 * at 4 rows of the DNA model (session 31); the first kernel was removed.
 * Four block barriers a layer instead of seven then took the DNA model
 * from 76 to 73 us at one row and from 148 to 141 at 8 rows. Session 46
 * (trials stk-ilp, stk-gather, stk-split; stk-prof timed the phases): the
 * rows a group at once, the gathers a thread an output (they had been 40%
 * of a layer's cycles, a warp's load spread over up to 16 blocks) and the
 * split barriers took the DNA model from 73 to 59 us at one row, 109 to 76
 * at 8, 172 to 110 at 16, 287 to 180 at 32, and 64 rows (12 a cluster)
 * to 252 us, past the layer path's 280. Session 47 (trial stk-rs): a group's
 * norm and in_proj sums by one reduce-scatter, its convs on RU lanes at
 * once: 8 rows 78 -> 74 us, 32 rows 181 -> 159, 64 rows 252 -> 224.
 * Session 48 (trial stk-pack): the weights packed and staged by bulk
 * copies: 1 row 59 -> 54 us, 8 rows 73 -> 67, 64 rows 224 -> 218; mamba-dna's
 * default model at one row 27 -> 25. Then (trial stk-rsr) the residuals by
 * reduce-scatter from 2 rows a cluster: 16 rows 96 -> 85 us, 32 rows 153 ->
 * 127, 64 rows 218 -> 179. Session 49: the pack holding in_proj times the
 * norm's weights and A itself (stk-fold), 64 rows 179 -> 170 us; the one-
 * row exchanges pushed (stk-mpush): 1 row 53 -> 46 us, mamba-dna's default
 * model 25 -> 22; the reduce-scatter pushed (stk-rpush) at 8 and 16 rows 64
 * -> 60 and 83 -> 79; the gate made once a row and channel (stk-gate): 64
 * rows 170 -> 166. Session 50: mamba-dna's default model at 64 rows back
 * on the barriers (RP), 54 -> 51 us. Session 51 (a shuffle is one warp's a
 * cycle an SM): phase 1's squares a warp a row and the convs a thread
 * (stk-conv), 6 and 10 rows a cluster (stk-rw: 7 clusters of 16 fit an
 * H100, 8 do not), x_proj's and the scan's sums by reduce-scatters
 * (stk-xsum, stk-ysum): 64 rows 166 -> 127 us, 32 rows 119 -> 95, 16 rows
 * 78 -> 73; mamba-dna's default model at 64 rows 54 -> 40.
 *
 * Shapes: d_model 128 or 256, d_inner = 32 C for C in 4, 8, 16, d_state
 * 16, real A, RMSNorm, d_conv 2..4, dt_rank <= 64, fp32 weights on 16-byte
 * boundaries, up to MB_STACK_STEP_MAX_LAYERS layers (mb_stack_step_fits);
 * mb_stack_step runs others layer by layer (ops/stack_step.c). AUTO takes
 * it where it was measured faster (mb_stack_step_prefers_cuda). To time it
 * against the layer-by-layer steps: MB_CUDA_STEP=cluster
 * bench/bench_generate --device cuda --shape dna, and MB_CUDA_STEP=fused
 * or split. */
#include <cooperative_groups.h>

#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

namespace cg = cooperative_groups;

#define STK_THREADS 1024
#define STK_N 16       /* d_state */
#define STK_CH 32      /* channels a block: a warp each for its x and z rows */
#define STK_XD_MAX 96  /* dt_rank + 2 d_state, dt_rank <= 64 */
#define STK_RU 4 /* rows at once in the norm and in_proj (2, session 46: level) */
#define STK_RV 4 /* rows at once in out_proj's sums */
/* rows a cluster from which out_proj's sums reach the residuals by a
 * reduce-scatter (stk_cluster_put) rather than every block summing every
 * output (session 48, H100: from 1 row a cluster the DNA model's one row
 * took 54 -> 57 us, the extra barrier dearer than the loads it saves; from
 * 2, 8 rows 67 -> 66). One row a cluster pushes its sums instead (PU,
 * session 49), so below this no kernel is left */
#define STK_RS_ROWS 2
#define STK_C_MAX 16 /* blocks a cluster */
/* rows a cluster up to which the reduce-scatter's halves are pushed
 * (st.async) rather than put and gathered around cluster barriers; 12
 * rows' shared memory cannot hold the slots, RW d_model floats (session
 * 49, H100, pushes against barriers, both without the gate: the DNA model
 * at 8 rows 0.064 -> 0.060 ms, 16 rows 0.083 -> 0.079, at 2 and 4 rows a
 * cluster of 16; but at 8 rows a cluster 0.120 -> 0.122, and mamba-dna's
 * default model, clusters of 8, at 64 rows, 4 a cluster, 0.053 -> 0.056:
 * that one is left to the barriers, see RP in stack_step_kernel. The trial
 * stk-rp16 (pushes only at 2 and 4 rows in clusters of 16) was level at 8
 * rows a cluster, session 50) */
#define STK_RP_ROWS 8

/* rows taken at once where a cluster has rw: all of them up to most, else
 * most where it divides rw, else 5 or 3 (10 and 6 rows a cluster: a
 * group's x and z sums, padded, one reduce-scatter over 16 or 8 lanes),
 * else 2 */
static constexpr __host__ __device__ int stk_group(int rw, int most)
{
    return rw <= most ? rw : rw % most == 0 ? most : rw % 5 == 0 ? 5 : rw % 3 == 0 ? 3 : 2;
}

/* one layer: its weights and its state (conv (K-1, Di), ssm (Di, N)) */
struct stk_layer {
    const float *norm_w, *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *A_log, *D, *out_proj;
    float *conv_state, *ssm_state;
    const float *pack; /* the packed weights (stk_pack), rank 0's part; NULL: none */
};
struct stk_args {
    int n_layer, B, K, R;
    float eps;
    const int32_t *tokens; /* layer 0's rows: embed[tokens[b]], or h's */
    const float *embed, *h;
    float *out;
    stk_layer L[MB_STACK_STEP_MAX_LAYERS];
};

/* the launch attribute of clusters of C blocks along x */
static cudaLaunchAttribute stk_cluster_attr(int C)
{
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = C;
    at.val.clusterDim.y = 1;
    at.val.clusterDim.z = 1;
    return at;
}

/* How many clusters of C blocks of a kernel the device holds at once (16 is
 * past the portable size of 8: Hopper allows it where a GPC has 16 free
 * SMs), 0 when none, asked once per device and cached in known[] (0 not
 * asked, -1 none); the kernel's dynamic shared memory is opted into first. */
static int stk_fits_dev(const mb_cuda_state *st, const void *kernel, int C, size_t smem, int *known)
{
    const int dev = st->device < 64 ? st->device : 63;
    if (!known[dev]) {
        cudaLaunchAttribute at[1] = {stk_cluster_attr(C)};
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(C);
        cfg.blockDim = dim3(STK_THREADS);
        cfg.dynamicSmemBytes = smem;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        int n = 0;
        cudaError_t e = cudaSuccess;
        if (C > 8) e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        if (e == cudaSuccess && smem > 48 * 1024)
            e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) e = cudaOccupancyMaxActiveClusters(&n, kernel, &cfg);
        if (e != cudaSuccess) (void)cudaGetLastError(); /* an answer, not a failure of the context */
        known[dev] = e == cudaSuccess && n >= 1 ? n : -1;
    }
    return known[dev] > 0 ? known[dev] : 0;
}

/* a's rows on clusters of C blocks, rw rows a cluster */
static cudaError_t stk_launch(const mb_cuda_state *st, const void *kernel, int C, size_t smem, int rw,
                              const stk_args *a)
{
    cudaLaunchAttribute at[2] = {stk_cluster_attr(C), {}};
    at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[1].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(C * ((a->B + rw - 1) / rw));
    cfg.blockDim = dim3(STK_THREADS);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st->stream;
    cfg.attrs = at;
    cfg.numAttrs = st->pdl ? 2 : 1;
    void *args[1] = {const_cast<stk_args *>(a)};
    return cudaLaunchKernelExC(&cfg, kernel, args);
}

/* floats of the dynamic shared memory: in_proj's rows, two of the rest,
 * then the activations of each of the cluster's RW rows, then the rows'
 * conv taps */
template <int DQ, int RW>
struct stk_layout {
    static constexpr int D = 128 * DQ, CH = STK_CH;
    static constexpr int IN = 2 * CH * D;
    static constexpr int RX = 0, ROUT = RX + STK_XD_MAX * CH, RDT = ROUT + D * CH,
                         RNW = RDT + CH * (STK_XD_MAX - 2 * STK_N), RCW = RNW + D, RCB = RCW + CH * 4,
                         RDTB = RCB + CH, RAL = RDTB + CH, RDD = RAL + CH * STK_N, RS = RDD + CH;
    /* a row's activations: h, part_out (D each), silu(z), xc, y, xr (CH each),
     * part_x, dbc (STK_XD_MAX each) */
    static constexpr int AH = 0, APO = D, AZG = 2 * D, AXC = AZG + CH, AY = AXC + CH, AXR = AY + CH,
                         APX = AXR + CH, ADBC = APX + STK_XD_MAX, ACT = ADBC + STK_XD_MAX;
    static constexpr int TAPS = RW * 3 * CH; /* the conv state's K-1 <= 3 taps, a row and channel */
    /* the slots of pushed partial sums: one row a cluster, the other
     * ranks' x_proj and out_proj sums (a rank's at rank STK_XD_MAX, rank
     * D); several up to STK_RP_ROWS (the reduce-scatter), each rank's
     * part of this block's slice of out_proj's (RW D / C a rank), and at 2
     * rows x_proj's too, a rank's row at (rank RW + row) STK_XD_MAX */
    static constexpr int PSX = RW <= 2 ? STK_C_MAX * RW * STK_XD_MAX : 0, PSO = RW == 1 ? STK_C_MAX * D : RW <= STK_RP_ROWS ? RW * D : 0;
    /* a rank's packed weights (mb_stack_step_pack): the rest, then in_proj */
    static constexpr int PACK = RS + IN;
    /* then the mbarriers: the packed staging's three (the two rest
     * buffers', in_proj's), the pushes' three (x_proj's and out_proj's
     * slots, the reduce-scatter's second half into the residuals) */
    static constexpr size_t MBAR = (size_t)(IN + 2 * RS + RW * ACT + TAPS + PSX + PSO) * sizeof(float);
    static constexpr size_t BYTES = MBAR + 6 * sizeof(uint64_t);
    static_assert(RS % 4 == 0 && IN % 4 == 0 && ACT % 4 == 0, "16-byte parts");
    static_assert(BYTES <= 227 * 1024, "an H100's shared memory a block");
};

/* v[0..K) each summed over the lanes that differ in bits TOP, TOP/2, .., 1,
 * level by level: the K sums' shuffles are independent, so they overlap
 * where one sum's five would wait on each other; each value's tree is
 * mb_warp_sum's (TOP 16), bit for bit */
template <int K, int TOP>
static __device__ __forceinline__ void stk_xor_sums(float *v)
{
#pragma unroll
    for (int o = TOP; o > 0; o >>= 1)
#pragma unroll
        for (int k = 0; k < K; k++) v[k] += __shfl_xor_sync(0xffffffffu, v[k], o);
}

/* The sum over the cluster's C blocks of the float at p in each one's
 * shared memory, rank by rank (every block adds in the same order, so
 * their copies agree bit for bit). A thread an output: a warp's loads are
 * then one rank's run of 32 floats, where lanes spread over the ranks
 * made each load of a warp a request to up to 16 blocks (trial stk-prof,
 * session 46: those two gathers were 40% of a layer's cycles) */
template <int C>
static __device__ __forceinline__ float stk_cluster_sum(const float *p)
{
    /* 32-bit shared::cluster addresses (mapa, ld.shared::cluster): the
     * generic pointers of map_shared_rank took two registers a rank and
     * spilled */
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    float v[C];
#pragma unroll
    for (int q = 0; q < C; q++) {
        uint32_t ra;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(q));
        asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v[q]) : "r"(ra));
    }
    float s = 0.f;
#pragma unroll
    for (int q = 0; q < C; q++) s += v[q];
    return s;
}

/* v into the float at p in each of the cluster's C blocks' shared memory
 * (the reduce-scatter's second half: its owner's sum to every copy) */
template <int C>
static __device__ __forceinline__ void stk_cluster_put(float *p, float v)
{
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
#pragma unroll
    for (int q = 0; q < C; q++) {
        uint32_t ra;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(a), "r"(q));
        asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(ra), "f"(v) : "memory");
    }
}

/* a cluster barrier in two halves (barrier.cluster arrive / wait), so
 * that work which needs no other block's writes fills the wait */
static __device__ __forceinline__ void stk_cluster_arrive(void)
{
    asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
static __device__ __forceinline__ void stk_cluster_wait(void)
{
    asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

/* The packed weights' staging by the copy engine: one thread issues a
 * layer's two bulk copies (cp.async.bulk, completing on an mbarrier) and
 * the block goes on, where 16-byte cp.async copies from every thread held
 * the threads at their issue (trial stk-prof, session 47: 2,727 cycles of a
 * layer's top at one row, the next layer's 56 KB gathered column by
 * column). Trial stk-bulk (session 48) issued the gathers themselves as
 * bulk copies, 300 of 128 bytes a layer, and ran at half the speed: so the
 * weights are packed first, a block's part of a layer in two runs. */
static __device__ __forceinline__ uint32_t stk_sa(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }
static __device__ __forceinline__ void stk_mbar_init(uint32_t mb)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(mb) : "memory");
}
/* the phase's one arrival, which then waits for bytes more */
static __device__ __forceinline__ void stk_mbar_expect(uint32_t mb, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mb), "r"(bytes) : "memory");
}
static __device__ __forceinline__ void stk_mbar_wait(uint32_t mb, uint32_t parity)
{
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(mb), "r"(parity)
                     : "memory");
}
/* bytes (a multiple of 16, both ends 16-byte aligned) global -> shared
 * address dst, counted on the mbarrier at mb, by one thread */
static __device__ __forceinline__ void stk_bulk(uint32_t dst, const void *src, uint32_t bytes, uint32_t mb)
{
    stk_mbar_expect(mb, bytes);
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(mb)
                 : "memory");
}
/* this thread's reads of shared memory ordered before the copy engine's
 * later writes to it */
static __device__ __forceinline__ void stk_fence_async(void) { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

/* Exchanges by push (session 49: stk-mpush at one row a cluster, stk-rpush
 * for the reduce-scatter up to STK_RP_ROWS): each block stores its partial
 * sums into the other blocks' slots by st.async, each store counted on the
 * receiver's mbarrier, and a receiver waits on its own mbarrier alone.
 * Where a cluster barrier and then a gather of remote loads took two round
 * trips to the slowest block (sync 1 + dbc, sync 2 + residual: 5,900 of a
 * one-row layer's ~14,000 cycles, stk-prof session 47), this is one trip
 * one way. (stk-push, session 47, stored by st.shared::cluster and kept the
 * cluster barrier, whose release then waited on those stores: slower.)
 * A slot is rewritten a layer later, by a block that has first received
 * what its reader sends only after reading it (the exchange between, or
 * at several rows the x_proj barrier): no barrier guards the reuse. */
/* v into rank q's copy of the 16 bytes at dst, counted on its mbarrier at mb */
static __device__ __forceinline__ void stk_push4(const float *dst, float4 v, uint32_t mb, int q)
{
    uint32_t ra, rb;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(ra) : "r"(stk_sa(dst)), "r"(q));
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(rb) : "r"(mb), "r"(q));
    asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];" ::"r"(ra),
                 "r"(__float_as_uint(v.x)), "r"(__float_as_uint(v.y)), "r"(__float_as_uint(v.z)),
                 "r"(__float_as_uint(v.w)), "r"(rb)
                 : "memory");
}
/* the phase's one arrival, waiting for bytes of other blocks' st.async */
static __device__ __forceinline__ void stk_mbar_expect_cl(uint32_t mb, uint32_t bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.release.cluster.shared::cta.b64 _, [%0], %1;" ::"r"(mb), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void stk_mbar_wait_cl(uint32_t mb, uint32_t parity)
{
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\nselp.u32 "
                     "%0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(mb), "r"(parity)
                     : "memory");
}

/* rows x CH floats at src (rows ld apart) -> dst (CH a row), 16 bytes a copy */
static __device__ __forceinline__ void stk_stage_rows(float *dst, const float *src, int ld, int rows)
{
    constexpr int Q = STK_CH / 4;
#pragma unroll 1
    for (int i = threadIdx.x; i < rows * Q; i += STK_THREADS) {
        const int r = i / Q, c = (i - r * Q) * 4;
        __pipeline_memcpy_async(dst + r * STK_CH + c, src + (size_t)r * ld + c, 16);
    }
}

/* RW rows a cluster (rows b0 .. b0 + RW - 1; those past B computed on zeros,
 * neither loaded nor stored): the weights a block stages serve all of them,
 * and each phase takes its rows in turn between the same barriers. PK: the
 * weights from their pack (stk_layer.pack), by bulk copies */
template <int C, int DQ, int RW, bool PK>
static __global__ void __launch_bounds__(STK_THREADS, 1) stack_step_kernel(const stk_args a)
{
    typedef stk_layout<DQ, RW> Y;
    constexpr int D = Y::D, CH = STK_CH, N = STK_N, DI = C * CH, NT = STK_THREADS;
    /* the scan's (row, channel, state) items a thread: rows r0, r0 + 2, ... */
    constexpr int HPT = RW > 1 ? RW / 2 : 1;
    /* rows taken at once: by in_proj (two sums a row), by out_proj (one;
     * x_proj and the scan take all of a cluster's rows, a thread's) */
    constexpr int RU = stk_group(RW, STK_RU), RV = stk_group(RW, STK_RV);
    static_assert(RW % RU == 0 && RW % RV == 0, "whole groups of rows");
    /* a group's x and z sums, padded to a power of 2 for the reduce-scatter */
    constexpr int SX = 2 * RU <= 2 ? 2 : 2 * RU <= 4 ? 4 : 2 * RU <= 8 ? 8 : 2 * RU <= 16 ? 16 : 32;
    static_assert(2 * RU <= 32, "a group's sums in one warp's lanes");
    static_assert(RW <= NT / 32, "a warp a row's squares");
    static_assert(NT / 32 == CH && NT % D == 0 && 2 * CH * N == NT, "a warp a channel's rows; whole teams an output");
    static_assert(RW == 1 || RW % 2 == 0, "rows a cluster: 1 or even");
    /* the residuals by reduce-scatter: a block sums RSN of the RW D
     * outputs, RSN a thread at most, and writes them into every block */
    constexpr bool RSR = RW >= STK_RS_ROWS;
    constexpr int RSN = RW * D / C;
    static_assert(!RSR || (RW * D % C == 0 && RSN <= STK_THREADS && RSN % 4 == 0),
                  "whole slices of the residuals, an output a thread, pushed 16 bytes at a time");
    constexpr int RQ = RSN / 4; /* a slice's pushes */
    /* but for 4 rows a cluster of 8 at d_model 128 (mamba-dna's default
     * model at 64 rows), where the barriers won twice: 0.056 -> 0.053 ms
     * before the gate, 0.054 -> 0.051 after it (sessions 49 and 50, H100;
     * 2 rows a cluster of 8, its 16 rows, lost with the barriers, 0.028 ->
     * 0.030) */
    constexpr bool RP = RSR && RW <= STK_RP_ROWS && !(C == 8 && DQ == 1 && RW == 4);
    /* one row a cluster: the partial sums pushed (stk_push4), no cluster
     * barrier in the layers */
    constexpr bool PU = RW == 1;
    static_assert(PU || RSR, "every rows-a-cluster's residuals pushed or reduce-scattered");
    /* x_proj's partial sums pushed: at one row, and at 2 rows a cluster
     * with the residuals' (RP): the DNA model at 8 rows 60 -> 56 us; at 4
     * rows a cluster (16 rows) they lost, 78 -> 80 (trial stk-xpush,
     * session 50, H100) */
    constexpr bool XP = PU || (RP && RW == 2);
    /* (one row keeps its own push and sum below, not the several-rows form
     * at RW 1: written that way, the one-row token measured 0.046 -> 0.047
     * ms, session 50) */
    static_assert(!XP || RW * STK_XD_MAX <= NT, "a thread an output of the pushed dbc's sums");
    static_assert(C <= STK_C_MAX && (C - 1) * (D / 128) <= NT / 32, "a warp a rank's part");
    extern __shared__ float4 stk_sh4[];
    float *const win = reinterpret_cast<float *>(stk_sh4), *const rest0 = win + Y::IN;
    float *const act = rest0 + 2 * Y::RS, *const ctap = act + RW * Y::ACT;
    float *const slx = ctap + Y::TAPS, *const slo = slx + Y::PSX; /* the pushed slots (PU, RP) */
    cg::cluster_group cl = cg::this_cluster();
    const int me = (int)cl.block_rank(), c0 = me * CH;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int K = a.K, R = a.R, XD = R + 2 * N;
    const int b0 = (int)(blockIdx.x / C) * RW, nr = min(RW, a.B - b0); /* the cluster's rows, live ones */
    /* this thread's scan items: channel sj, state sn, rows sr0 + 2 k (from
     * tid where used: held, they cost the one-row kernel spills) */
    auto sj = [] { return (int)(threadIdx.x % (CH * N)) / N; };
    auto sn = [] { return (int)(threadIdx.x % N); };
    auto sr0 = [] { return RW > 1 ? (int)(threadIdx.x / (CH * N)) : 0; };
    auto sact = [] { return RW > 1 || threadIdx.x < CH * N; };

    /* the packed staging's mbarriers: rest buffer k's (a phase every other
     * layer), in_proj's (a phase a layer) */
    const uint32_t mbar = stk_sa(stk_sh4) + (uint32_t)Y::MBAR;
    /* the reduce-scatter's second half: the other blocks' slices of layer
     * l's residuals pushed into this block's copy (mbarrier 5) */
    auto rs_wait = [&](int l) {
        if (tid == 0) stk_mbar_expect_cl(mbar + 40u, (uint32_t)((C - 1) * RSN * 4));
        stk_mbar_wait_cl(mbar + 40u, (uint32_t)l & 1u);
    };
    auto stage_rest = [&](const stk_layer &P, float *r) {
        if constexpr (PK) {
            if (tid == 0)
                stk_bulk(stk_sa(r), P.pack + (size_t)me * Y::PACK, Y::RS * 4u, mbar + 8u * (r == rest0 ? 0u : 1u));
            return;
        }
        stk_stage_rows(r + Y::RX, P.x_proj + c0, DI, XD);
        stk_stage_rows(r + Y::ROUT, P.out_proj + c0, DI, D);
        mb_stage_async<NT>(r + Y::RDT, P.dt_w + (size_t)c0 * R, CH * R);
        mb_stage_async<NT>(r + Y::RNW, P.norm_w, D);
        mb_stage_async<NT>(r + Y::RCW, P.conv_w + (size_t)c0 * K, CH * K);
        if (P.conv_b) mb_stage_async<NT>(r + Y::RCB, P.conv_b + c0, CH);
        mb_stage_async<NT>(r + Y::RDTB, P.dt_b + c0, CH);
        mb_stage_async<NT>(r + Y::RAL, P.A_log + (size_t)c0 * N, CH * N);
        mb_stage_async<NT>(r + Y::RDD, P.D + c0, CH);
    };
    auto stage_in = [&](const stk_layer &P) {
        if constexpr (PK) {
            if (tid == 0) stk_bulk(stk_sa(win), P.pack + (size_t)me * Y::PACK + Y::RS, Y::IN * 4u, mbar + 16u);
            return;
        }
        mb_stage_async<NT>(win, P.in_proj + (size_t)c0 * D, CH * D);
        mb_stage_async<NT>(win + CH * D, P.in_proj + (size_t)(DI + c0) * D, CH * D);
    };
    /* the layer's scan states in registers; the conv taps of every row into
     * ctap (row, tap, channel) */
    float hst[HPT];
    auto ssm_at = [&](int k) { return ((size_t)(b0 + sr0() + 2 * k) * DI + c0 + sj()) * N + sn(); };
    auto load_states = [&](const stk_layer &P) {
#pragma unroll
        for (int k = 0; k < HPT; k++) hst[k] = sact() && sr0() + 2 * k < nr ? P.ssm_state[ssm_at(k)] : 0.f;
    };
    auto load_taps = [&](const stk_layer &P) {
        for (int i = tid; i < Y::TAPS; i += NT) {
            const int r = i / (3 * CH), k = (i / CH) % 3, ch = i % CH;
            if (k < K - 1) ctap[i] = r < nr ? P.conv_state[((size_t)(b0 + r) * (K - 1) + k) * DI + c0 + ch] : 0.f;
        }
    };

    /* the next layer's taps: TPT a thread, loaded into registers (fetch)
     * before ctap's reads are done, stored into it (put) after. (load_taps,
     * the kernel's first, is the two at once, and the conv state's stores
     * repeat their index: load_taps written as them gave ptxas spills at 4
     * rows a cluster, and the index as one lambda changed the PTX, so both
     * wait for a GPU run to time them) */
    constexpr int TPT = (Y::TAPS + NT - 1) / NT;
    auto fetch_taps = [&](const stk_layer &Pq, float *tv) {
#pragma unroll
        for (int j = 0; j < TPT; j++) {
            const int i = tid + j * NT, r = i / (3 * CH), k = (i / CH) % 3, ch = i % CH;
            tv[j] = i < Y::TAPS && k < K - 1 && r < nr ? Pq.conv_state[((size_t)(b0 + r) * (K - 1) + k) * DI + c0 + ch]
                                                       : 0.f;
        }
    };
    auto put_taps = [&](const float *tv) {
#pragma unroll
        for (int j = 0; j < TPT; j++) {
            const int i = tid + j * NT, k = (i / CH) % 3;
            if (i < Y::TAPS && k < K - 1) ctap[i] = tv[j];
        }
    };

    if (tid == 0) {
        for (int k = 0; k < 6; k++) stk_mbar_init(mbar + 8u * k);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    /* no block pushes to another before its mbarriers are made (waited at layer 0's first push) */
    if constexpr (XP) stk_cluster_arrive();
    /* layer 0's weights before the wait (nothing in the step writes them) */
    stage_rest(a.L[0], rest0);
    stage_in(a.L[0]);
    __pipeline_commit();
    mb_pdl_wait(); /* the rows and the states are the kernels' before this one */
    load_states(a.L[0]);
    load_taps(a.L[0]);
    for (int i = tid; i < RW * D; i += NT) {
        const int r = i / D, o = i % D;
        act[r * Y::ACT + Y::AH + o] = r >= nr  ? 0.f
                                      : a.tokens ? a.embed[(size_t)a.tokens[b0 + r] * D + o]
                                                 : a.h[(size_t)(b0 + r) * D + o];
    }
    for (int l = 0; l < a.n_layer; l++) {
        const stk_layer &P = a.L[l];
        const bool more = l + 1 < a.n_layer;
        const stk_layer &Pn = a.L[more ? l + 1 : l];
        const float *rs = rest0 + (l & 1) * Y::RS;
        /* this layer's weights (rest buffer l & 1 has a phase every other
         * layer), and every read of the other buffer done before its refill */
        if constexpr (PK) {
            stk_mbar_wait(mbar + 8u * (l & 1), (uint32_t)(l >> 1) & 1u);
            stk_mbar_wait(mbar + 16u, (uint32_t)l & 1u);
            stk_fence_async();
        } else {
            __pipeline_wait_prior(0);
        }
        /* every block's slice of the residuals written (the layer before's end) */
        if (RP && l > 0) rs_wait(l - 1);
        if (RSR && !RP && l > 0) stk_cluster_wait();
        __syncthreads();
        if (more) stage_rest(Pn, rest0 + ((l + 1) & 1) * Y::RS);
        __pipeline_commit();

        /* 1: RMSNorm, in_proj and the conv. Warp w makes channel w's x and
         * z rows (lanes along d_model: its weights' loads shared by the
         * rows); the norm's scale is applied to the sums (W (h w) r == W
         * (h w r)), so no barrier comes before the products */
        const float4 *nv = reinterpret_cast<const float4 *>(rs + Y::RNW);
        /* the conv of row r, channel ch, from its sum of squares and its x
         * and z sums */
        auto conv_row = [&](int r, int ch, float ssu, float xu, float zu) {
            float *ar = act + r * Y::ACT;
            const float rn = rsqrtf(ssu / D + a.eps);
            const float xw = xu * rn, zw = zu * rn;
            const float *cw = rs + Y::RCW + ch * K;
            float c = P.conv_b ? rs[Y::RCB + ch] : 0.f;
#pragma unroll
            for (int k = 0; k < 3; k++)
                if (k < K - 1) c += cw[k] * ctap[(r * 3 + k) * CH + ch];
            c += cw[K - 1] * xw;
            ar[Y::AXC + ch] = mb_silu_dev(c);
            ar[Y::AZG + ch] = mb_silu_dev(zw); /* the gate, once a row and channel (the scan's N lanes each made it) */
            ar[Y::AXR + ch] = xw;
        };
        if constexpr (RW == 1) {
            /* one row, with no barrier in the phase: each warp sums the
             * row's squares itself from the loads its dot products take,
             * its weights read where used (the kernel at 64 registers
             * without spills), lane 0 the channel's conv + SiLU */
            const float4 *hv = reinterpret_cast<const float4 *>(act + Y::AH);
            float ss = 0.f, xzv[2] = {0.f, 0.f};
#pragma unroll
            for (int q = 0; q < DQ; q++) {
                const float4 h4 = hv[lane + 32 * q];
                ss += h4.x * h4.x + h4.y * h4.y + h4.z * h4.z + h4.w * h4.w;
                /* the pack's in_proj has the norm's weights in it */
                float4 hn = h4;
                if constexpr (!PK) {
                    const float4 n4 = nv[lane + 32 * q];
                    hn = make_float4(h4.x * n4.x, h4.y * n4.y, h4.z * n4.z, h4.w * n4.w);
                }
#pragma unroll
                for (int g = 0; g < 2; g++) {
                    const float4 w = reinterpret_cast<const float4 *>(win + (warp + g * CH) * D)[lane + 32 * q];
                    xzv[g] += w.x * hn.x + w.y * hn.y + w.z * hn.z + w.w * hn.w;
                }
            }
            float sx[3] = {ss, xzv[0], xzv[1]};
            stk_xor_sums<3, 16>(sx);
            if (lane == 0) conv_row(0, warp, sx[0], sx[1], sx[2]);
        } else {
            /* several rows: the weights held in registers across them, RU
             * rows' sums at once (one row's shuffles and loads would each
             * wait on the one before), reduce-scattered so that lane u
             * holds row u's x sum and lane RU + u its z sum, stored raw
             * (AXR, AZG); warp r sums row r's squares alone (into ADBC,
             * free until the x exchange), where every warp summing every
             * row's was a third of the phase's multiplies. After a barrier,
             * a thread a row and channel makes the convs, where the lanes
             * of RU rows made them while the warp's others waited (trial
             * stk-conv, session 50: phase 1 was issue-bound, ~680 cycles
             * a row at 12 rows a cluster) */
            float4 w4[2][DQ];
#pragma unroll
            for (int g = 0; g < 2; g++)
#pragma unroll
                for (int q = 0; q < DQ; q++)
                    w4[g][q] = reinterpret_cast<const float4 *>(win + (warp + g * CH) * D)[lane + 32 * q];
            if (warp < RW) {
                const float4 *hv = reinterpret_cast<const float4 *>(act + warp * Y::ACT + Y::AH);
                float ss = 0.f;
#pragma unroll
                for (int q = 0; q < DQ; q++) {
                    const float4 h4 = hv[lane + 32 * q];
                    ss += h4.x * h4.x + h4.y * h4.y + h4.z * h4.z + h4.w * h4.w;
                }
                ss = mb_warp_sum(ss);
                if (lane == 0) act[warp * Y::ACT + Y::ADBC] = ss;
            }
#pragma unroll 1
            for (int r0 = 0; r0 < RW; r0 += RU) {
                float sx[SX];
#pragma unroll
                for (int k = 2 * RU; k < SX; k++) sx[k] = 0.f;
#pragma unroll
                for (int u = 0; u < RU; u++) {
                    const float4 *hv = reinterpret_cast<const float4 *>(act + (r0 + u) * Y::ACT + Y::AH);
                    float xzv[2] = {0.f, 0.f};
#pragma unroll
                    for (int q = 0; q < DQ; q++) {
                        const float4 h4 = hv[lane + 32 * q];
                        float4 hn = h4;
                        if constexpr (!PK) {
                            const float4 n4 = nv[lane + 32 * q];
                            hn = make_float4(h4.x * n4.x, h4.y * n4.y, h4.z * n4.z, h4.w * n4.w);
                        }
#pragma unroll
                        for (int g = 0; g < 2; g++)
                            xzv[g] += w4[g][q].x * hn.x + w4[g][q].y * hn.y + w4[g][q].z * hn.z + w4[g][q].w * hn.w;
                    }
                    sx[u] = xzv[0], sx[RU + u] = xzv[1];
                }
                const float t = mb_warp_rs_pow2<SX>(sx, lane);
                if (lane < 2 * RU) act[(r0 + lane % RU) * Y::ACT + (lane < RU ? Y::AXR : Y::AZG) + warp] = t;
            }
            __syncthreads();
            for (int i = tid; i < RW * CH; i += NT) {
                const int r = i / CH, ch = i % CH;
                const float *ar = act + r * Y::ACT;
                conv_row(r, ch, ar[Y::ADBC], ar[Y::AXR + ch], ar[Y::AZG + ch]);
            }
        }
        if constexpr (PK) stk_fence_async(); /* in_proj's rows read before their refill */
        __syncthreads();
        if (more) stage_in(Pn);
        __pipeline_commit();
        /* 2: x_proj's partial sums over the block's channels: outputs warp,
         * warp + 32, ... (lane: channel), every row against one load of the
         * weight. Several rows: the RW sums by one reduce-scatter (padded to
         * SR, a power of 2; lane r then holds row r's), SR shuffles where
         * RV at a time by butterflies took 5 RW: the SM issues one warp's
         * shuffle a cycle, and at 12 rows a cluster the DNA width's 48
         * outputs took 2,880 of them a layer */
        for (int o = warp; o < XD; o += NT / 32) {
            const float wx = rs[Y::RX + o * CH + lane];
            if constexpr (RW > 1) {
                constexpr int SR = RW <= 2 ? 2 : RW <= 4 ? 4 : RW <= 8 ? 8 : 16;
                static_assert(RW <= 16, "a cluster's rows in one warp's lanes");
                float v[SR];
#pragma unroll
                for (int u = 0; u < SR; u++) v[u] = u < RW ? wx * act[u * Y::ACT + Y::AXC + lane] : 0.f;
                const float t = mb_warp_rs_pow2<SR>(v, lane);
                if (lane < RW) act[lane * Y::ACT + Y::APX + o] = t;
            } else {
#pragma unroll 1
                for (int r0 = 0; r0 < RW; r0 += RV) {
                    float v[RV];
#pragma unroll
                    for (int u = 0; u < RV; u++) v[u] = wx * act[(r0 + u) * Y::ACT + Y::AXC + lane];
                    stk_xor_sums<RV, 16>(v);
                    if (lane == 0)
#pragma unroll
                        for (int u = 0; u < RV; u++) act[(r0 + u) * Y::ACT + Y::APX + o] = v[u];
                }
            }
        }
        /* the cluster barrier split: its arrive's release fence waits on
         * memory in flight, so the conv state's stores come after it, and
         * they and the next layer's taps' loads (into registers: ctap is
         * read by these stores) overlap the wait for the other blocks */
        if constexpr (PU) {
            /* warp w sends the partials to rank me + 1 + w, 16 bytes a lane */
            __syncthreads();
            if (l == 0) stk_cluster_wait();
            if (warp < C - 1 && 4 * lane < XD) {
                const int q = (me + 1 + warp) % C;
                stk_push4(slx + me * STK_XD_MAX + 4 * lane,
                          *reinterpret_cast<const float4 *>(act + Y::APX + 4 * lane), mbar + 24u, q);
            }
        } else if constexpr (XP) {
            /* warp p sends row p % RW's partials to rank me + 1 + p / RW, 16 bytes a lane */
            __syncthreads();
            if (l == 0) stk_cluster_wait();
            for (int p = warp; p < (C - 1) * RW; p += NT / 32)
                if (4 * lane < XD) {
                    const int q = (me + 1 + p / RW) % C, r = p % RW;
                    stk_push4(slx + (me * RW + r) * STK_XD_MAX + 4 * lane,
                              *reinterpret_cast<const float4 *>(act + r * Y::ACT + Y::APX + 4 * lane), mbar + 24u, q);
                }
        } else {
            stk_cluster_arrive();
        }
        float tapn[TPT];
        if (more) fetch_taps(Pn, tapn);
        for (int i = tid; i < Y::TAPS; i += NT) {
            const int r = i / (3 * CH), k = (i / CH) % 3, ch = i % CH;
            if (r < nr && k < K - 1)
                P.conv_state[((size_t)(b0 + r) * (K - 1) + k) * DI + c0 + ch] =
                    k < K - 2 ? ctap[i + CH] : act[r * Y::ACT + Y::AXR + ch];
        }
        if constexpr (PU) {
            /* dbc: the C ranks' parts summed in turn (stk_cluster_sum's order), from the slots */
            if (tid < XD) {
                if (tid == 0) stk_mbar_expect_cl(mbar + 24u, (uint32_t)((C - 1) * ((XD + 3) / 4) * 16));
                stk_mbar_wait_cl(mbar + 24u, (uint32_t)l & 1u);
                float s = 0.f;
#pragma unroll
                for (int q = 0; q < C; q++) s += q == me ? act[Y::APX + tid] : slx[q * STK_XD_MAX + tid];
                act[Y::ADBC + tid] = s;
            }
        } else if constexpr (XP) {
            /* dbc: output o of row r, the C ranks' parts summed in turn (stk_cluster_sum's order), from the slots */
            if (tid < RW * XD) {
                if (tid == 0) stk_mbar_expect_cl(mbar + 24u, (uint32_t)((C - 1) * RW * ((XD + 3) / 4) * 16));
                stk_mbar_wait_cl(mbar + 24u, (uint32_t)l & 1u);
                const int r = tid / XD, o = tid - r * XD;
                float s = 0.f;
#pragma unroll
                for (int q = 0; q < C; q++)
                    s += q == me ? act[r * Y::ACT + Y::APX + o] : slx[(q * RW + r) * STK_XD_MAX + o];
                act[r * Y::ACT + Y::ADBC + o] = s;
            }
        } else {
            stk_cluster_wait();
            /* dbc: output o of row r, the C ranks' parts summed in turn */
            for (int i = tid; i < RW * XD; i += NT) {
                const int r = i / XD, o = i - r * XD;
                act[r * Y::ACT + Y::ADBC + o] = stk_cluster_sum<C>(act + r * Y::ACT + Y::APX + o);
            }
        }
        __syncthreads();
        if (more) put_taps(tapn);
        /* 3: delta, the scan and the gate, (row, channel j, state n): the
         * channel's N lanes split dt_proj's sum, each then holding all of it
         * (an xor tree: the same bits on every lane) */
        if constexpr (HPT > 1) {
            /* several items a thread (4 rows a cluster and more): dt_proj's
             * and y's sums over the channel's N lanes by one reduce-scatter
             * of the HPT items each (padded to SY; mb_warp_rs_pow2 over N
             * lanes), where a butterfly an item took 4 shuffles for each
             * sum; lane n < HPT then holds item n's dt sum, makes its
             * softplus once (not on every lane of every item) and hands it
             * to the channel's lanes, and stores item n's y. The SM issues
             * one warp's shuffle a cycle: at 12 rows a cluster these were
             * 1,536 of them a layer */
            constexpr int SY = HPT <= 2 ? 2 : HPT <= 4 ? 4 : HPT <= 8 ? 8 : 16;
            static_assert(HPT <= N, "an item a lane of the channel's N");
            const int j = sj(), n = sn(), base = lane & ~(N - 1);
            float w[SY];
#pragma unroll
            for (int k = 0; k < SY; k++) {
                w[k] = 0.f;
                if (k < HPT) {
                    const float *dbc = act + (sr0() + 2 * k) * Y::ACT + Y::ADBC;
                    for (int kk = n; kk < R; kk += N) w[k] += rs[Y::RDT + j * R + kk] * dbc[kk];
                }
            }
            const float dtn = mb_softplus_dev(mb_warp_rs_pow2<SY, N>(w, lane) + rs[Y::RDTB + j]);
            /* the pack holds A = -exp(A_log) itself */
            const float A = PK ? rs[Y::RAL + j * N + n] : -expf(rs[Y::RAL + j * N + n]);
#pragma unroll
            for (int k = 0; k < SY; k++) {
                w[k] = 0.f;
                if (k < HPT) {
                    const float *ar = act + (sr0() + 2 * k) * Y::ACT;
                    const float dt = __shfl_sync(0xffffffffu, dtn, base + k);
                    hst[k] = expf(dt * A) * hst[k] + dt * ar[Y::ADBC + R + n] * ar[Y::AXC + j];
                    w[k] = ar[Y::ADBC + R + N + n] * hst[k];
                }
            }
            const float yn = mb_warp_rs_pow2<SY, N>(w, lane); /* item n's y on lane n */
            if (n < HPT) {
                float *ar = act + (sr0() + 2 * n) * Y::ACT;
                ar[Y::AY + j] = (yn + rs[Y::RDD + j] * ar[Y::AXC + j]) * ar[Y::AZG + j];
            }
        } else if (sact()) {
            float yo[HPT]; /* stored after every item's maths: a store before would hold back the next item's loads */
#pragma unroll
            for (int k = 0; k < HPT; k++) {
                const float *ar = act + (sr0() + 2 * k) * Y::ACT;
                const float *dbc = ar + Y::ADBC;
                const int j = sj(), n = sn();
                float v = 0.f;
                for (int kk = n; kk < R; kk += N) v += rs[Y::RDT + j * R + kk] * dbc[kk];
#pragma unroll
                for (int sh = N / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
                const float xcj = ar[Y::AXC + j];
                /* the pack holds A = -exp(A_log) itself */
                const float dt = mb_softplus_dev(v + rs[Y::RDTB + j]);
                const float A = PK ? rs[Y::RAL + j * N + n] : -expf(rs[Y::RAL + j * N + n]);
                hst[k] = expf(dt * A) * hst[k] + dt * dbc[R + n] * xcj;
                v = dbc[R + N + n] * hst[k];
#pragma unroll
                for (int sh = N / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
                yo[k] = (v + rs[Y::RDD + j] * xcj) * ar[Y::AZG + j];
            }
            if (sn() == 0)
#pragma unroll
                for (int k = 0; k < HPT; k++) act[(sr0() + 2 * k) * Y::ACT + Y::AY + sj()] = yo[k];
        }
        __syncthreads();
        /* 4: out_proj's partial sums: TPO threads an output, CH / TPO
         * channels each, the weights held across the rows */
        {
            constexpr int TPO = NT / D, CPT = CH / TPO;
            const int o = tid / TPO, q = tid % TPO;
            const float *w = rs + Y::ROUT + o * CH + q * CPT;
            float wr[CPT];
            if constexpr (RW > 1) {
#pragma unroll
                for (int c = 0; c < CPT; c++) wr[c] = w[c];
            }
#pragma unroll 1
            for (int r0 = 0; r0 < RW; r0 += RV) {
                float v[RV];
#pragma unroll
                for (int u = 0; u < RV; u++) {
                    const float *ay = act + (r0 + u) * Y::ACT + Y::AY + q * CPT;
                    v[u] = 0.f;
#pragma unroll
                    for (int c = 0; c < CPT; c++) v[u] += (RW > 1 ? wr[c] : w[c]) * ay[c];
                }
                stk_xor_sums<RV, TPO / 2>(v);
                if (q == 0)
#pragma unroll
                    for (int u = 0; u < RV; u++) act[(r0 + u) * Y::ACT + Y::APO + o] = v[u];
            }
        }
        if constexpr (PU) {
            /* warps (D / 128) w .. send the partials to rank me + 1 + w, 16 bytes a lane */
            __syncthreads();
            constexpr int WPR = D / 128;
            if (warp < (C - 1) * WPR) {
                const int q = (me + 1 + warp / WPR) % C, f = (warp % WPR) * 128 + 4 * lane;
                stk_push4(slo + me * D + f, *reinterpret_cast<const float4 *>(act + Y::APO + f), mbar + 32u, q);
            }
        } else if constexpr (RP) {
            /* the reduce-scatter's first half: rank q's slice of this block's
             * partials into q's slot me, 16 bytes a thread */
            __syncthreads();
            for (int t = tid; t < (C - 1) * RQ; t += NT) {
                const int qi = t / RQ, k = t - qi * RQ, q = (me + 1 + qi) % C;
                const int i = q * RSN + 4 * k, r = i / D, o = i - r * D;
                stk_push4(slo + me * RSN + 4 * k, *reinterpret_cast<const float4 *>(act + r * Y::ACT + Y::APO + o),
                          mbar + 32u, q);
            }
        } else {
            stk_cluster_arrive();
        }
        /* the scan states, then the next layer's, while the other blocks arrive */
#pragma unroll
        for (int k = 0; k < HPT; k++)
            if (sact() && sr0() + 2 * k < nr) {
                P.ssm_state[ssm_at(k)] = hst[k];
                if (more) hst[k] = Pn.ssm_state[ssm_at(k)];
            }
        if constexpr (PU) {
            /* the residuals += the C ranks' parts in turn, from the slots */
            if (tid < D) {
                if (tid == 0) stk_mbar_expect_cl(mbar + 32u, (uint32_t)((C - 1) * D * 4));
                stk_mbar_wait_cl(mbar + 32u, (uint32_t)l & 1u);
                float s = 0.f;
#pragma unroll
                for (int q = 0; q < C; q++) s += q == me ? act[Y::APO + tid] : slo[q * D + tid];
                act[Y::AH + tid] += s;
            }
        } else if constexpr (RP) {
            /* the residuals += the cluster's parts, by reduce-scatter: block
             * me sums outputs [me RSN, (me + 1) RSN) of its rows from its
             * slots (the ranks in turn) and then pushes them into every
             * other block's copy, waited on at the next layer's top (no
             * other block reads or writes those floats before). With every
             * block summing every output, a block made C times the remote
             * loads: 10,870 of a layer's ~55,000 cycles at 12 rows a cluster
             * (stk-prof, session 47). */
            if (tid < RSN) {
                if (tid == 0) stk_mbar_expect_cl(mbar + 32u, (uint32_t)((C - 1) * RSN * 4));
                stk_mbar_wait_cl(mbar + 32u, (uint32_t)l & 1u);
                const int i = me * RSN + tid, r = i / D, o = i - r * D;
                float s = 0.f;
#pragma unroll
                for (int q = 0; q < C; q++) s += q == me ? act[r * Y::ACT + Y::APO + o] : slo[q * RSN + tid];
                act[r * Y::ACT + Y::AH + o] += s;
            }
            __syncthreads();
            for (int t = tid; t < (C - 1) * RQ; t += NT) {
                const int qi = t / RQ, k = t - qi * RQ, q = (me + 1 + qi) % C;
                const int i = me * RSN + 4 * k, r = i / D, o = i - r * D;
                float *h = act + r * Y::ACT + Y::AH + o;
                stk_push4(h, *reinterpret_cast<const float4 *>(h), mbar + 40u, q);
            }
        } else if constexpr (RSR) {
            stk_cluster_wait();
            /* the same by cluster barriers: block me's sums put into every
             * block's copy, no other block reading or writing those floats
             * until the barrier this arrive starts, waited on at the next
             * layer's top */
            if (tid < RSN) {
                const int i = me * RSN + tid, r = i / D, o = i - r * D;
                float *ar = act + r * Y::ACT;
                stk_cluster_put<C>(ar + Y::AH + o, ar[Y::AH + o] + stk_cluster_sum<C>(ar + Y::APO + o));
            }
            stk_cluster_arrive();
        }
    }
    if constexpr (RP) rs_wait(a.n_layer - 1);
    if constexpr (RSR && !RP) stk_cluster_wait();
    __syncthreads();
    if (me == 0)
        for (int i = tid; i < nr * D; i += NT) a.out[(size_t)(b0 + i / D) * D + i % D] = act[(i / D) * Y::ACT + Y::AH + i % D];
    /* no block leaves while another may still read its shared memory */
    cl.sync();
}

/* The pack (mb_stack_step_pack): layer l's rank c's Y::PACK floats at buf +
 * (l C + c) PACK, the rest buffer and then in_proj's rows, each float
 * where the unpacked kernel's staging (stage_rest, stage_in) puts it, and
 * zeros where that puts nothing; but for two values the packed kernel
 * then need not compute a row and layer at a time: in_proj's weights times
 * the norm's (W (h w) = (W diag w) h), and A = -exp(A_log) for A_log */
template <int DQ>
static __global__ void stk_pack_kernel(const stk_args a, int C, float *__restrict__ buf)
{
    typedef stk_layout<DQ, 1> Y;
    constexpr int D = Y::D, CH = STK_CH, N = STK_N;
    const int DI = C * CH, K = a.K, R = a.R, XD = R + 2 * N;
    const size_t total = (size_t)a.n_layer * C * Y::PACK;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        const int f = (int)(i % Y::PACK);
        const size_t lc = i / Y::PACK;
        const int c0 = (int)(lc % C) * CH;
        const stk_layer &P = a.L[lc / C];
        float v = 0.f;
        if (f >= Y::RS) { /* in_proj: the block's x rows, then its z rows, times the norm's weights */
            const int g = f - Y::RS, z = g / (CH * D);
            v = P.in_proj[(size_t)(z * DI + c0) * D + (g - z * CH * D)] * P.norm_w[g % D];
        } else if (f < Y::ROUT) { /* x_proj's columns, a row of CH an output */
            const int o = (f - Y::RX) / CH, j = (f - Y::RX) % CH;
            if (o < XD) v = P.x_proj[(size_t)o * DI + c0 + j];
        } else if (f < Y::RDT) {
            const int o = (f - Y::ROUT) / CH, j = (f - Y::ROUT) % CH;
            v = P.out_proj[(size_t)o * DI + c0 + j];
        } else if (f < Y::RNW) {
            if (f - Y::RDT < CH * R) v = P.dt_w[(size_t)c0 * R + (f - Y::RDT)];
        } else if (f < Y::RCW) {
            v = P.norm_w[f - Y::RNW];
        } else if (f < Y::RCB) {
            if (f - Y::RCW < CH * K) v = P.conv_w[(size_t)c0 * K + (f - Y::RCW)];
        } else if (f < Y::RDTB) {
            if (P.conv_b) v = P.conv_b[c0 + (f - Y::RCB)];
        } else if (f < Y::RAL) {
            v = P.dt_b[c0 + (f - Y::RDTB)];
        } else if (f < Y::RDD) { /* A = -exp(A_log), as the gathering kernel takes it */
            v = -expf(P.A_log[(size_t)c0 * N + (f - Y::RAL)]);
        } else {
            v = P.D[c0 + (f - Y::RDD)];
        }
        buf[i] = v;
    }
}

/* One instance of the kernel. With a: launch it over a.B rows, RW a
 * cluster, returning the launch's error. Without: how many clusters the
 * device holds at once, 0 when it holds none. */
typedef int (*stk_fn)(const mb_cuda_state *, const stk_args *);

template <int C, int DQ, int RW, bool PK>
static int stk_go(const mb_cuda_state *st, const stk_args *a)
{
    const void *k = reinterpret_cast<const void *>(stack_step_kernel<C, DQ, RW, PK>);
    static int known[64];
    if (!a) return stk_fits_dev(st, k, C, stk_layout<DQ, RW>::BYTES, known);
    return (int)stk_launch(st, k, C, stk_layout<DQ, RW>::BYTES, RW, a);
}

/* the instances of C and DQ, by rows a cluster: STK_ROWS (12: the most a
 * block's shared memory holds at d_model 256). 6 and 10 are there for the
 * waves: a 132-SM Hopper holds fewer than 8 clusters of 16 blocks, so 32
 * and 64 rows of the DNA model took 4 clusters of 8 rows and 6 of 12,
 * where 6 of 6 and 7 of 10 fit */
#define STK_NRW 7
static const int STK_ROWS[STK_NRW] = {1, 2, 4, 6, 8, 10, 12};
template <int C, int DQ, bool PK>
static const stk_fn *stk_by_rows(void)
{
    static const stk_fn f[STK_NRW] = {stk_go<C, DQ, 1, PK>, stk_go<C, DQ, 2, PK>,  stk_go<C, DQ, 4, PK>,
                                      stk_go<C, DQ, 6, PK>, stk_go<C, DQ, 8, PK>,  stk_go<C, DQ, 10, PK>,
                                      stk_go<C, DQ, 12, PK>};
    return f;
}
template <bool PK>
static const stk_fn *stk_by_shape(int C, int DQ)
{
    return C == 16 ? (DQ == 2 ? stk_by_rows<16, 2, PK>() : stk_by_rows<16, 1, PK>())
           : C == 8 ? (DQ == 2 ? stk_by_rows<8, 2, PK>() : stk_by_rows<8, 1, PK>())
                    : (DQ == 2 ? stk_by_rows<4, 2, PK>() : stk_by_rows<4, 1, PK>());
}

/* the kernel instance for these shapes, NULL: it does not run them; the
 * packed one where every layer has its pack */
static stk_fn stk_pick(const mb_cuda_state *st, int n_layer, const mb_block_step_params *layer, int *rw)
{
    if (st->cc_major < 9 || n_layer < 1 || n_layer > MB_STACK_STEP_MAX_LAYERS) return NULL;
    const mb_block_step_params *p0 = &layer[0];
    const int d = p0->d_model, di = p0->d_inner, B = p0->batch;
    if ((d != 128 && d != 256) || di % STK_CH || B < 1) return NULL;
    const int C = di / STK_CH;
    if (C != 4 && C != 8 && C != 16) return NULL;
    for (int l = 0; l < n_layer; l++) {
        const mb_block_step_params *p = &layer[l];
        if (p->batch != B || p->d_model != d || p->d_inner != di || p->d_state != STK_N || p->is_complex ||
            p->norm_b || p->d_conv < 2 || p->d_conv > 4 || p->dt_rank < 1 || p->dt_rank + 2 * STK_N > STK_XD_MAX ||
            p->d_conv != p0->d_conv || p->dt_rank != p0->dt_rank || p->eps != p0->eps)
            return NULL;
        if (p->in_proj_bf16 || p->x_proj_bf16 || p->out_proj_bf16 || p->ld_out || p->out2 || (l > 0 && p->tokens))
            return NULL;
        /* 16-byte copies of the weights into shared memory */
        const void *w[] = {p->in_proj, p->x_proj, p->out_proj, p->dt_w, p->norm_w, p->conv_w, p->dt_b, p->A_log,
                           p->D, p->conv_b};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (reinterpret_cast<uintptr_t>(w[i]) & 15) return NULL;
    }
    bool pk = true;
    for (int l = 0; l < n_layer; l++) pk = pk && layer[l].stk_pack && !(reinterpret_cast<uintptr_t>(layer[l].stk_pack) & 15);
    const int DQ = d / 128;
    const stk_fn *f = pk ? stk_by_shape<true>(C, DQ) : stk_by_shape<false>(C, DQ);
    /* rows a cluster: the fewest whose clusters fit one wave of them (a row
     * a cluster is the shortest chain; more rows share the staged weights
     * where one a cluster would take waves), else the most; or those
     * MB_CUDA_STK_ROWS names, where they fit */
    int i = 0, last = -1;
    for (; i < STK_NRW; i++) {
        const int r = STK_ROWS[i], w = f[i](st, NULL);
        if (!w) continue;
        last = i;
        if (st->stk_rows ? r == st->stk_rows : (B + r - 1) / r <= w) break;
    }
    if (i == STK_NRW) i = last;
    if (i < 0) return NULL;
    if (rw) *rw = STK_ROWS[i];
    return f[i];
}

extern "C" int mb_stack_step_fits_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    return st && stk_pick(st, n_layer, layer, NULL) != NULL;
}

/* MB_CUDA_STEP=cluster: wherever it runs. AUTO: where the rows fit one
 * wave of clusters (stk_pick's choice, up to 12 rows a cluster). Measured
 * on an H100 (bench_generate, per token), against the steps layer by
 * layer: the DNA model (d256 x 8: fewer than 8 clusters a wave) 73 against
 * 73 us at one row, 74 against 115 at 4 (session 31); 110 against 142 at 8
 * (2 rows a cluster), 173 against 241 at 16 (4 rows), but 287 against 244
 * at 32 and 573 against 289 at 64 (8 rows a cluster), so AUTO stopped at 4
 * rows a cluster (session 36). With session 46's kernel: 180 against 244 at
 * 32 rows (8 a cluster) and 252 against 280 at 64 (12 a cluster); with
 * session 47's, 159 against 238 and 224 against 283. */
extern "C" int mb_stack_step_prefers_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st || n_layer < 1) return 0;
    if (st->step_path != MB_STEP_CLUSTER && st->step_path != MB_STEP_AUTO) return 0;
    int rw = 1;
    const stk_fn fn = stk_pick(st, n_layer, layer, &rw);
    if (!fn) return 0;
    if (st->step_path == MB_STEP_CLUSTER) return 1;
    const int B = layer[0].batch, wave = fn(st, NULL);
    return (B + rw - 1) / rw <= wave;
}

/* the kernels' arguments for these layers, but for the rows' pointers */
static void stk_args_of(stk_args *a, int n_layer, const mb_block_step_params *layer)
{
    const mb_block_step_params *p0 = &layer[0];
    *a = {};
    a->n_layer = n_layer, a->B = p0->batch, a->K = p0->d_conv, a->R = p0->dt_rank, a->eps = p0->eps;
    for (int l = 0; l < n_layer; l++) {
        const mb_block_step_params *p = &layer[l];
        a->L[l] = {p->norm_w, p->in_proj, p->conv_w, p->conv_b, p->x_proj, p->dt_w, p->dt_b, p->A_log,
                   p->D,      p->out_proj, p->conv_state, p->ssm_state, p->stk_pack};
    }
}

extern "C" size_t mb_stack_step_pack_floats_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st || !stk_pick(st, n_layer, layer, NULL)) return 0;
    const size_t per = layer[0].d_model == 256 ? stk_layout<2, 1>::PACK : stk_layout<1, 1>::PACK;
    return (size_t)n_layer * (layer[0].d_inner / STK_CH) * per;
}

extern "C" int mb_stack_step_pack_cuda(mb_ctx *ctx, int n_layer, mb_block_step_params *layer, float *buf)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    const size_t n = mb_stack_step_pack_floats_cuda(ctx, n_layer, layer);
    if (!n || !buf || (reinterpret_cast<uintptr_t>(buf) & 15))
        return mb_ctx_fail(ctx, "internal: mb_stack_step_pack: %s", !n ? "the cluster kernel does not run these layers"
                                                                      : "no 16-byte aligned buffer");
    stk_args a;
    stk_args_of(&a, n_layer, layer);
    const int C = layer[0].d_inner / STK_CH, blocks = (int)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024);
    if (layer[0].d_model == 256) stk_pack_kernel<2><<<blocks, 256, 0, st->stream>>>(a, C, buf);
    else stk_pack_kernel<1><<<blocks, 256, 0, st->stream>>>(a, C, buf);
    MB_LAUNCH_CHECK_RET(ctx, "stk_pack_kernel", -1);
    for (int l = 0; l < n_layer; l++) layer[l].stk_pack = buf + (size_t)l * (n / n_layer);
    return 0;
}

extern "C" int mb_stack_step_cuda(MB_OPS_STACK_STEP_ARGS)
{
    (void)ws;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return 0; /* the context has failed: nothing to fall back to */
    int rw = 1;
    const stk_fn fn = stk_pick(st, n_layer, layer, &rw);
    if (!fn) return 1;
    const int B = layer[0].batch, C = layer[0].d_inner / STK_CH;
    /* which instance ran is a question of the device (how many clusters it
     * holds differs between GPUs of one kind), so it is said, not assumed */
    if (st->stk_say && st->stk_said != ((C * 16 + rw) << 16 | B)) {
        st->stk_said = (C * 16 + rw) << 16 | B;
        fprintf(stderr,
                "libmamba: cluster step: %d rows on %d clusters of %d blocks, %d rows a cluster (the device holds %d "
                "such clusters at once)\n",
                B, (B + rw - 1) / rw, C, rw, fn(st, NULL));
    }
    stk_args a;
    stk_args_of(&a, n_layer, layer);
    a.tokens = layer[0].tokens, a.embed = layer[0].embed, a.h = h, a.out = out;
    MB_CUDA_CHECK_RET(ctx, (cudaError_t)fn(st, &a), 0);
    MB_LAUNCH_CHECK_RET(ctx, "stack_step_kernel", 0);
    return 0;
}

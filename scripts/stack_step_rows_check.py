# The indexing of ops/stack_step.cu's several-rows cluster kernel (merged from the trial cluster-rows) checked without a GPU: the kernel's phases transcribed
# per block and thread (its index formulas as written) in float64, against a plain numpy block step
# (session 34: RW 1, 2, 4, 8, and 12 since session 46, with rows past B, K 2-4, two layers, two steps: worst 2.2e-15; it fails
# when the conv taps' shift or the scan's row of a thread is changed; since session 47 also phase 1's
# reduce-scatter lane by lane, which fails with a shuffle's lane one off or a level's halves
# swapped; since session 48 the residuals' reduce-scatter from STK_RS_ROWS rows a cluster, every
# output of every block's copy written once, which fails with each block summing slice 0;
# since session 49 the pushed exchanges (st.async into the other blocks' slots: one row's x_proj
# and out_proj sums, the reduce-scatter's two halves up to STK_RP_ROWS rows; since session 50
# x_proj's sums at 2 rows a cluster too), the slots NaN until pushed, which fails with a slot's
# rank or row one off; since session 51 RW 6 and 10, their groups of 3 and 5 rows padded, and
# the reduce-scatters of x_proj's sums (all the rows at once) and of the scan's dt and y sums
# (a thread's items over a channel's 16 lanes), which fail with a lane's item one off).
# python3 scripts/stack_step_rows_check.py
import numpy as np
rng = np.random.default_rng(1)
RS_ROWS = 2  # stack_step.cu's STK_RS_ROWS (session 48): the residuals by reduce-scatter from this many rows a cluster
RP_ROWS = 8  # STK_RP_ROWS (session 49): the reduce-scatter pushed up to this many rows (not at 4 rows of C 8, DQ 1: session 50)
XDM = 96     # STK_XD_MAX
def run(C, DQ, RW, K, R, B, L=2, steps=2):
    N, CH, NT = 16, 32, 1024
    PU = RW == 1; RP = RS_ROWS <= RW <= RP_ROWS and (C, DQ, RW) != (8, 1, 4); XP = PU or (RP and RW == 2)
    D, DI, XD = 128 * DQ, C * 32, R + 32
    eps = 1e-5
    W = []
    for l in range(L):
        W.append(dict(nw=rng.uniform(.5, 1.5, D), inp=rng.normal(0, D ** -.5, (2 * DI, D)),
                      cw=rng.normal(0, .5, (DI, K)), cb=rng.normal(0, .1, DI), xp=rng.normal(0, DI ** -.5, (XD, DI)),
                      dtw=rng.normal(0, R ** -.5, (DI, R)), dtb=rng.normal(-2, .5, DI), Al=np.log(rng.uniform(1, 16, (DI, N))),
                      Dd=rng.normal(0, 1, DI), op=rng.normal(0, DI ** -.5, (D, DI))))
    silu = lambda v: v / (1 + np.exp(-v)); sp = lambda v: np.log1p(np.exp(v))
    # reference
    cs_ref = [rng.normal(0, 1, (B, K - 1, DI)) for _ in range(L)]; ss_ref = [rng.normal(0, 1, (B, DI, N)) for _ in range(L)]
    cs_k = [c.copy() for c in cs_ref]; ss_k = [s.copy() for s in ss_ref]
    for step in range(steps):
        h0 = rng.normal(0, 1, (B, D))
        ref = h0.copy()
        for l, P in enumerate(W):
            for b in range(B):
                h = ref[b]; xn = h / np.sqrt((h * h).mean() + eps) * P['nw']
                xz = P['inp'] @ xn; x, z = xz[:DI], xz[DI:]
                c = P['cb'] + (P['cw'][:, :K - 1] * cs_ref[l][b].T).sum(1) + P['cw'][:, K - 1] * x
                cs_ref[l][b] = np.vstack([cs_ref[l][b][1:], x[None]])
                xc = silu(c); dbc = P['xp'] @ xc
                dt = sp(P['dtw'] @ dbc[:R] + P['dtb']); A = -np.exp(P['Al'])
                ss_ref[l][b] = np.exp(dt[:, None] * A) * ss_ref[l][b] + dt[:, None] * dbc[R:R + N][None] * xc[:, None]
                y = (ss_ref[l][b] @ dbc[R + N:] + P['Dd'] * xc) * silu(z)
                ref[b] = h + P['op'] @ y
        # the kernel, cluster by cluster, block by block
        out = np.full((B, D), np.nan)
        for cl in range((B + RW - 1) // RW):
            b0 = cl * RW; nr = min(RW, B - b0)
            TAPS = RW * 3 * CH
            act = [dict(h=np.zeros((RW, D)), po=np.zeros((RW, D)), zg=np.zeros((RW, CH)), xc=np.zeros((RW, CH)),
                        y=np.zeros((RW, CH)), xr=np.zeros((RW, CH)), px=np.zeros((RW, 96)), dbc=np.zeros((RW, 96))) for _ in range(C)]
            ctap = [np.full(TAPS, np.nan) for _ in range(C)]
            hst = [np.zeros((NT, RW // 2 if RW > 1 else 1)) for _ in range(C)]
            def sj(t): return (t % (CH * N)) // N
            def sn(t): return t % N
            def sr0(t): return t // (CH * N) if RW > 1 else 0
            def sact(t): return RW > 1 or t < CH * N
            HPT = RW // 2 if RW > 1 else 1
            def ssm_idx(me, t, k): return (b0 + sr0(t) + 2 * k, me * CH + sj(t), sn(t))
            def load_states(me, l):
                for t in range(NT):
                    for k in range(HPT):
                        hst[me][t, k] = ss_k[l][ssm_idx(me, t, k)] if sact(t) and sr0(t) + 2 * k < nr else 0.
            def load_taps(me, l):
                for i in range(TAPS):
                    r, k, ch = i // (3 * CH), (i // CH) % 3, i % CH
                    if k < K - 1: ctap[me][i] = cs_k[l][b0 + r, k, me * CH + ch] if r < nr else 0.
            for me in range(C):
                load_states(me, 0); load_taps(me, 0)
                for i in range(RW * D):
                    r, o = i // D, i % D
                    act[me]['h'][r, o] = 0. if r >= nr else h0[b0 + r, o]
            for l, P in enumerate(W):
                more = l + 1 < L
                for me in range(C):   # phase 1
                    c0 = me * CH; A_ = act[me]
                    for warp in range(CH):
                        for r in range(RW):
                            h = A_['h'][r]; rn = 1 / np.sqrt((h * h).sum() / D + eps); hn = h * P['nw']
                            xzw = [P['inp'][c0 + warp] @ hn * rn, P['inp'][DI + c0 + warp] @ hn * rn]
                            c = P['cb'][c0 + warp]
                            for k in range(3):
                                if k < K - 1: c += P['cw'][c0 + warp, k] * ctap[me][(r * 3 + k) * CH + warp]
                            c += P['cw'][c0 + warp, K - 1] * xzw[0]
                            A_['xc'][r, warp] = silu(c); A_['zg'][r, warp] = xzw[1]; A_['xr'][r, warp] = xzw[0]
                for me in range(C):   # phase 2
                    c0 = me * CH; A_ = act[me]
                    for warp in range(32):
                        for o in range(warp, XD, 32):
                            for r in range(RW):
                                A_['px'][r, o] = sum(P['xp'][o, c0 + lane] * A_['xc'][r, lane] for lane in range(32))
                # cl.sync
                for me in range(C):   # conv state store
                    c0 = me * CH
                    for i in range(TAPS):
                        r, k, ch = i // (3 * CH), (i // CH) % 3, i % CH
                        if r < nr and k < K - 1:
                            cs_k[l][b0 + r, k, c0 + ch] = ctap[me][i + CH] if k < K - 2 else act[me]['xr'][r, ch]
                newdbc = [np.zeros((RW, 96)) for _ in range(C)]
                if XP:   # pushed: warp p sends row p % RW to rank me + 1 + p / RW, 4 floats a lane
                    slx = [np.full(C * RW * XDM, np.nan) for _ in range(C)]
                    for me in range(C):
                        for p in range((C - 1) * RW):
                            for lane in range(32):
                                if 4 * lane < XD:
                                    q, r = (me + 1 + p // RW) % C, p % RW
                                    for e in range(4): slx[q][(me * RW + r) * XDM + 4 * lane + e] = act[me]['px'][r, 4 * lane + e]
                    for me in range(C):
                        for tid in range(RW * XD):
                            r, o = tid // XD, tid % XD
                            newdbc[me][r, o] = sum(act[me]['px'][r, o] if q == me else slx[me][(q * RW + r) * XDM + o] for q in range(C))
                else:
                    for me in range(C):   # dbc: a thread an output of a row, the ranks in turn
                        for tid in range(NT):
                            for i in range(tid, RW * XD, NT):
                                r, o = i // XD, i % XD
                                newdbc[me][r, o] = sum(act[q]['px'][r, o] for q in range(C))
                for me in range(C): act[me]['dbc'][:] = newdbc[me]
                for me in range(C):   # next taps
                    if more: load_taps(me, l + 1)
                for me in range(C):   # phase 3
                    c0 = me * CH; A_ = act[me]
                    for t in range(NT):
                        if not sact(t): continue
                        for k in range(HPT):
                            r = sr0(t) + 2 * k; j, n = sj(t), sn(t); dbc = A_['dbc'][r]
                            v = sum(P['dtw'][c0 + j, kk] * dbc[kk] for kk in range(R))
                            xcj = A_['xc'][r, j]
                            dt = sp(v + P['dtb'][c0 + j]); Aa = -np.exp(P['Al'][c0 + j, n])
                            hst[me][t, k] = np.exp(dt * Aa) * hst[me][t, k] + dt * dbc[R + n] * xcj
                    for t in range(0, min(NT, CH * N) if RW == 1 else NT, N):  # n == 0 lanes: the sum over n
                        for k in range(HPT):
                            r = sr0(t) + 2 * k; j = sj(t); dbc = A_['dbc'][r]
                            v = sum(dbc[R + N + n] * hst[me][t + n, k] for n in range(N))
                            A_['y'][r, j] = (v + P['Dd'][c0 + j] * A_['xc'][r, j]) * silu(A_['zg'][r, j])
                TPO = NT // D; CPT = CH // TPO
                for me in range(C):   # phase 4
                    c0 = me * CH; A_ = act[me]
                    for t in range(0, NT, TPO):
                        o = t // TPO
                        for r in range(RW):
                            A_['po'][r, o] = sum(P['op'][o, c0 + q * CPT + c] * A_['y'][r, q * CPT + c] for q in range(TPO) for c in range(CPT))
                # cl.sync: states, then residuals
                for me in range(C):
                    for t in range(NT):
                        for k in range(HPT):
                            if sact(t) and sr0(t) + 2 * k < nr:
                                ss_k[l][ssm_idx(me, t, k)] = hst[me][t, k]
                                if more: hst[me][t, k] = ss_k[l + 1][ssm_idx(me, t, k)]
                if PU:   # pushed: warp w sends floats (w % WPR) 128 + 4 lane .. to rank me + 1 + w / WPR
                    WPR = D // 128; slo = [np.full(C * D, np.nan) for _ in range(C)]
                    for me in range(C):
                        for warp in range((C - 1) * WPR):
                            for lane in range(32):
                                q, f = (me + 1 + warp // WPR) % C, (warp % WPR) * 128 + 4 * lane
                                for e in range(4): slo[q][me * D + f + e] = act[me]['po'][0, f + e]
                    newh = [act[me]['h'].copy() for me in range(C)]
                    for me in range(C):
                        for tid in range(D):
                            newh[me][0, tid] += sum(act[me]['po'][0, tid] if q == me else slo[me][q * D + tid] for q in range(C))
                elif RP:   # the reduce-scatter's halves pushed: slices into their owners' slots, owners' sums into every copy
                    RSN = RW * D // C; RQ = RSN // 4
                    slo = [np.full(RW * D, np.nan) for _ in range(C)]
                    for me in range(C):
                        for t in range((C - 1) * RQ):
                            qi, k = t // RQ, t % RQ; q = (me + 1 + qi) % C
                            i = q * RSN + 4 * k; r, o = i // D, i % D
                            for e in range(4): slo[q][me * RSN + 4 * k + e] = act[me]['po'][r, o + e]
                    newh = [np.full((RW, D), np.nan) for _ in range(C)]
                    for me in range(C):
                        for tid in range(RSN):
                            i = me * RSN + tid; r, o = i // D, i % D
                            newh[me][r, o] = act[me]['h'][r, o] + sum(act[me]['po'][r, o] if q == me else slo[me][q * RSN + tid]
                                                                      for q in range(C))
                    for me in range(C):
                        for t in range((C - 1) * RQ):
                            qi, k = t // RQ, t % RQ; q = (me + 1 + qi) % C
                            i = me * RSN + 4 * k; r, o = i // D, i % D
                            for e in range(4): newh[q][r, o + e] = newh[me][r, o + e]
                elif RW >= RS_ROWS:   # residuals by reduce-scatter: block me's slice, an output a thread, into every block
                    RSN = RW * D // C
                    newh = [np.full((RW, D), np.nan) for _ in range(C)]
                    for me in range(C):
                        for tid in range(min(NT, RSN)):
                            i = me * RSN + tid; r, o = i // D, i % D
                            v = act[me]['h'][r, o] + sum(act[q]['po'][r, o] for q in range(C))
                            for q in range(C): newh[q][r, o] = v
                else:
                    newh = [act[me]['h'].copy() for me in range(C)]
                    for me in range(C):   # residuals: a thread an output of a row, the ranks in turn
                        for tid in range(NT):
                            for i in range(tid, RW * D, NT):
                                r, o = i // D, i % D
                                newh[me][r, o] += sum(act[q]['po'][r, o] for q in range(C))
                for me in range(C): act[me]['h'][:] = newh[me]
            for i in range(nr * D): out[b0 + i // D, i % D] = act[0]['h'][i // D, i % D]
        e = max(np.abs(out - ref).max() / np.abs(ref).max(),
                max(np.abs(cs_k[l] - cs_ref[l]).max() for l in range(L)), max(np.abs(ss_k[l] - ss_ref[l]).max() for l in range(L)))
        print(f"C {C} DQ {DQ} RW {RW} K {K} R {R} B {B} step {step}: worst {e:.2e}"); assert e < 1e-12, e
# Phase 1's sums of a row group at RU > 1 (session 47, stk-rs), lane by lane: each lane's 3 RU
# partial sums (squares, x, z of rows 0..RU-1, padded with zeros to SX, a power of 2) through
# core/cuda_util.h's mb_warp_rs_pow2<SX> (the butterfly reduce-scatter's levels, then the xor
# butterflies over the rest), then the kernel's two shuffles from lanes + RU and + 2 RU: lane u
# < RU must hold row u's three totals, as conv_row(lane, t, tx, tz) takes them.
def rs_pow2(w, V, W=32):  # over the W lanes that differ in their low bits (32: the warp)
    w = [list(x) for x in w]
    half = V // 2
    while half >= 1:   # mb_warp_rs_level<HALF>: value k kept, value k + HALF sent (or the reverse)
        send = [[(w[l][k] if l & half else w[l][k + half]) for k in range(half)] for l in range(32)]
        for l in range(32):
            for k in range(half):
                keep = w[l][k + half] if l & half else w[l][k]
                w[l][k] = keep + send[l ^ half][k]
        half //= 2
    t = [w[l][0] for l in range(32)]
    o = V
    while o < W:
        t = [t[l] + t[l ^ o] for l in range(32)]
        o *= 2
    return t
def check_rs(RU):
    # several rows (trial stk-conv): each lane's RU x sums then RU z sums, 2 RU values padded
    # with zeros to SX, a power of 2 (RU 3 and 5: 6 and 10 rows a cluster, session 51); lane
    # L < 2 RU stores its total as row r0 + L % RU's x (L < RU) or z
    SX = next(v for v in (2, 4, 8, 16, 32) if 2 * RU <= v)
    sx = [[rng.normal() for _ in range(2 * RU)] + [0.] * (SX - 2 * RU) for _ in range(32)]
    t = rs_pow2(sx, SX)
    got = {}
    for lane in range(2 * RU):
        got[('x' if lane < RU else 'z', lane % RU)] = t[lane]
    e = max(abs(sum(sx[l][u + (RU if w == 'z' else 0)] for l in range(32)) - got[(w, u)]) for w in 'xz' for u in range(RU))
    assert len(got) == 2 * RU
    print(f"phase 1 reduce-scatter RU {RU} (SX {SX}): worst {e:.2e}"); assert e < 1e-12, e
for RU in (2, 3, 4, 5):
    check_rs(RU)
# x_proj's sums at several rows (session 51, trial stk-xsum): each lane's RW products (row r's
# channel lane) padded with zeros to SR, one reduce-scatter over the warp; lane r < RW stores row
# r's total
def check_xsum(RW):
    SR = next(v for v in (2, 4, 8, 16) if RW <= v)
    v = [[rng.normal() for _ in range(RW)] + [0.] * (SR - RW) for _ in range(32)]
    t = rs_pow2(v, SR)
    e = max(abs(sum(v[l][r] for l in range(32)) - t[r]) for r in range(RW))
    print(f"x_proj reduce-scatter RW {RW} (SR {SR}): worst {e:.2e}"); assert e < 1e-12, e
for RW in (2, 4, 6, 8, 10, 12):
    check_xsum(RW)
# The scan phase's sums at HPT > 1 items a thread (session 51, trial stk-ysum): over each
# channel's 16 lanes (lanes 0-15 and 16-31 of a warp: two channels), the items' values padded to
# SY, the levels of rs_n down from SY / 2, then butterflies from SY up to 8 (rs_pow2 over 16
# lanes); lane n < HPT holds
# item n's total (dt's, which lane base + k hands to every lane of the channel, and y's)
def check_ysum(HPT):
    SY = next(v for v in (2, 4, 8, 16) if HPT <= v)
    w = [[rng.normal() for _ in range(HPT)] + [0.] * (SY - HPT) for _ in range(32)]
    t = rs_pow2(w, SY, 16)
    e = 0.
    for base in (0, 16):
        for k in range(HPT):
            want = sum(w[base + n][k] for n in range(16))
            e = max(e, abs(want - t[base + k]))
    print(f"scan sums HPT {HPT} (SY {SY}): worst {e:.2e}"); assert e < 1e-12, e
for HPT in (2, 3, 4, 5, 6):
    check_ysum(HPT)
for args in [(4, 1, 1, 4, 8, 3), (4, 1, 2, 3, 8, 3), (4, 1, 4, 2, 5, 6), (4, 2, 8, 4, 16, 11), (4, 1, 12, 4, 16, 13),
             (16, 2, 1, 4, 16, 1), (16, 1, 2, 3, 8, 3), (16, 2, 4, 4, 1, 5), (16, 1, 12, 4, 17, 13), (8, 2, 8, 3, 64, 9), (8, 1, 4, 4, 16, 7),
             (16, 2, 10, 4, 16, 1), (16, 2, 6, 4, 16, 5), (8, 1, 10, 3, 8, 9), (4, 1, 6, 4, 16, 13)]:
    run(*args)

/* moe_route.c - the choice of experts of a MoE layer (mlx-lm's nemotron_h
 * MoEGate), the reference the GPU's moe_route.comp follows step by step.
 *
 * The gate's logits become sigmoid scores. The choice ranks score +
 * e_score_correction_bias: with n_group > 1 only the topk_group groups
 * whose two best biased scores sum highest stay in the running (the others'
 * entries are set to 0, as mlx-lm does). The top_k experts are taken best
 * first (the lowest index among equals); their weights are the plain
 * scores, normalised by their sum when norm_topk_prob and top_k > 1, times
 * routed_scaling_factor.
 */
#include "cpu.h"

#include <math.h>

void kt_moe_route(const kt_config *c, const kt_vec *bias, float *score, int *chosen, float *weight, float *scratch) {
    const int E = c->n_experts, K = c->top_k;
    float *sel = scratch, *gscore = scratch + E;
    for (int e = 0; e < E; e++) {
        score[e] = 1.0f / (1.0f + expf(-score[e]));
        sel[e] = score[e] + kt_vec_at(bias, e);
    }
    if (c->n_group > 1) { /* keep the topk_group groups with the best two scores */
        const int per = E / c->n_group;
        for (int g = 0; g < c->n_group; g++) {
            float a = -INFINITY, b = -INFINITY;
            for (int e = g * per; e < (g + 1) * per; e++) {
                if (sel[e] > a) b = a, a = sel[e];
                else if (sel[e] > b) b = sel[e];
            }
            gscore[g] = a + b;
        }
        for (int drop = 0; drop < c->n_group - c->topk_group; drop++) {
            int worst = -1;
            for (int g = 0; g < c->n_group; g++)
                if (gscore[g] != INFINITY && (worst < 0 || gscore[g] < gscore[worst])) worst = g;
            for (int e = worst * per; e < (worst + 1) * per; e++) sel[e] = 0.0f;
            gscore[worst] = INFINITY;
        }
    }
    float total = 0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int j = 0; j < k; j++) taken |= chosen[j] == e;
            if (!taken && (best < 0 || sel[e] > sel[best])) best = e;
        }
        chosen[k] = best;
        weight[k] = score[best];
        total += weight[k];
    }
    for (int k = 0; k < K; k++)
        weight[k] = (K > 1 && c->norm_topk ? weight[k] / (total + 1e-20f) : weight[k]) * c->routed_scale;
}

#ifndef MB_OPTIM_H
#define MB_OPTIM_H

#include "models/model.h"

struct mb_optim {
    mb_model *model;
    mb_optim_config cfg;
    int64_t step;   /* updates done so far */
    float *m, *v;   /* device, mirroring model->params */
    double share;   /* this rank's share of the next step's targets; < 0 = equal shares */
};

#endif

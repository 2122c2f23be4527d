import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score
from training.metrics import choose_threshold, classification_report
f=np.load('runs/bank_w112_k10.npz'); bank=f['bank'][:7]; y=f['y']; split=f['split']
tr,va,te=split=='train',split=='val',split=='test'
D=bank.shape[-1]
mu=bank[:,tr].reshape(-1,D).mean(0); sd=bank[:,tr].reshape(-1,D).std(0)+1e-6
B=(bank-mu)/sd
def saug(idx):
    X=B[:,idx]  # (K,N,D)
    Xc=X-X.mean(0,keepdims=True)
    return np.einsum('kni,knj->ij',Xc,Xc)/(X.shape[0]*X.shape[1])
S=saug(tr)
X=B[:,tr].reshape(-1,D); Y=np.tile(y[tr],len(B)).astype(float)
wpos=0.5/Y.mean(); wneg=0.5/(1-Y.mean()); sw=np.where(Y==1,wpos,wneg)
def fit(lam,alpha):
    def loss(p):
        w,b=p[:-1],p[-1]; z=X@w+b
        l=np.logaddexp(0,-z)*Y+np.logaddexp(0,z)*(1-Y)
        g=(1/(1+np.exp(-z))-Y)*sw
        L=(sw*l).mean()+lam*w@w+alpha*w@S@w
        gw=X.T@g/len(Y)+2*lam*w+2*alpha*S@w; gb=g.mean()
        return L,np.append(gw,gb)
    r=minimize(loss,np.zeros(D+1),jac=True,method='L-BFGS-B',options={'maxiter':500})
    return r.x[:-1],r.x[-1]
for lam in [1e-3,1e-2]:
  for alpha in [0,0.1,1,10]:
    w,b=fit(lam,alpha)
    z=lambda idx,k=0: B[k,idx]@w+b
    zv=B[:,va]@w+b; zt=B[:,te]@w+b
    # Platt on clean val
    from sklearn.linear_model import LogisticRegression
    pl=LogisticRegression(C=1e4).fit(zv[0][:,None],y[va]); a,c=pl.coef_[0,0],pl.intercept_[0]
    P=lambda z_: 1/(1+np.exp(-(a*z_+c)))
    thr=choose_threshold(y[va],P(zv[0])); r=classification_report(y[te],P(zt[0]),thr)
    dp=np.percentile(np.abs(P(zt[1:])-P(zt[0])),95)
    print(f'lam {lam} alpha {alpha}: valAUC {roc_auc_score(y[va],zv[0]):.3f} augvalAUC {roc_auc_score(np.tile(y[va],len(zv)-1),zv[1:].ravel()):.3f} test AUC {r["roc_auc"]:.3f} sens {r["sensitivity"]:.3f} spec {r["specificity"]:.3f} test reacq dp95 {dp:.3f} median {np.median(np.abs(P(zt[1:])-P(zt[0]))):.3f}', flush=True)
